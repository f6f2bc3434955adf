from __future__ import annotations

from django.urls import path

from .views import imports, problems

urlpatterns = [
    path("", problems.problem_list, name="curation-problem-list"),
    path("problems/<int:pk>/", problems.problem_detail, name="curation-problem-detail"),
    path("problems/import/", imports.problem_import_upload, name="curation-problem-import"),
    path(
        "problems/import/<str:token>/",
        imports.problem_import_preview,
        name="curation-problem-import-preview",
    ),
    path("jobs/<int:pk>/", imports.job_detail, name="curation-job-detail"),
]
