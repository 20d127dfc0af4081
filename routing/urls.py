"""URLs of the proxy endpoints."""

from __future__ import annotations

from django.urls import path

from routing import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("models", views.models_list, name="models-list"),
]
