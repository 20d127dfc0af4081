"""URLs of the jobs, files and batches APIs, mounted under /v1/."""

from __future__ import annotations

from django.urls import path

from jobs import views

urlpatterns = [
    path("jobs", views.jobs, name="jobs"),
    path("jobs/<str:job_id>", views.job, name="job"),
    path("jobs/<str:job_id>/cancel", views.job_cancel_view, name="job-cancel"),
    path("files", views.files, name="files"),
    path("files/<str:file_id>", views.file, name="file"),
    path("files/<str:file_id>/content", views.file_content, name="file-content"),
    path("batches", views.batches, name="batches"),
    path("batches/<str:batch_id>", views.batch, name="batch"),
    path("batches/<str:batch_id>/cancel", views.batch_cancel_view, name="batch-cancel"),
]
