"""URLs of the proxy endpoints (a trailing slash is accepted: some clients add one)."""

from __future__ import annotations

from django.urls import re_path

from routing import media_views, views
from routing.compare import views as compare_views

urlpatterns = [
    re_path(r"^chat/completions/?$", views.chat_completions, name="chat-completions"),
    re_path(r"^compare/?$", compare_views.compare, name="compare"),
    re_path(r"^embeddings/?$", media_views.embeddings, name="embeddings"),
    re_path(r"^images/generations/?$", media_views.images_generations, name="images-generations"),
    re_path(r"^models/?$", views.models_list, name="models-list"),
    # Ids contain slashes (`openrouter/meta-llama/llama-3.3-70b-instruct`): the rest of the path.
    re_path(r"^models/(?P<model_id>.+?)/?$", views.model_retrieve, name="models-retrieve"),
]
