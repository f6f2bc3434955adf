from __future__ import annotations

from django.urls import path

from .views import evaluations, runs

urlpatterns = [
    path("", runs.run_list, name="training-run-list"),
    path("new/<str:kind>", runs.run_new, name="training-run-new"),
    path("runs/<int:pk>/", runs.run_detail, name="training-run-detail"),
    path("runs/<int:pk>/<str:action>", runs.run_control, name="training-run-control"),
    path("evaluations/", evaluations.evaluation_compare, name="training-evaluations"),
    path(
        "evaluations/export.csv", evaluations.evaluation_export, name="training-evaluations-export"
    ),
    path(
        "evaluations/<int:pk>/rejudge",
        evaluations.evaluation_rejudge_view,
        name="training-evaluation-rejudge",
    ),
    path(
        "evaluations/<int:pk>/<str:benchmark>/",
        evaluations.evaluation_samples_page,
        name="training-evaluation-samples",
    ),
]
