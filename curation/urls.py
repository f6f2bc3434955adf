from __future__ import annotations

from django.urls import path

from .views import (
    agreement,
    batches,
    comments,
    compare,
    datasets,
    imports,
    jobs,
    problems,
    review,
    trajectories,
)

urlpatterns = [
    path("", problems.problem_list, name="curation-problem-list"),
    path("problems/<int:pk>/", problems.problem_detail, name="curation-problem-detail"),
    path("problems/<int:pk>/generate", problems.problem_generate, name="curation-problem-generate"),
    path("problems/<int:pk>/flag", problems.problem_answer_flag, name="curation-problem-flag"),
    path("problems/<int:pk>/split", problems.problem_split, name="curation-problem-split"),
    path(
        "problems/<int:pk>/flags/<int:flag_id>",
        problems.answer_flag_decide_view,
        name="curation-answer-flag-decide",
    ),
    path("problems/import/", imports.problem_import_upload, name="curation-problem-import"),
    path(
        "problems/import/<str:token>/",
        imports.problem_import_preview,
        name="curation-problem-import-preview",
    ),
    path("jobs/<int:pk>/", jobs.job_detail, name="curation-job-detail"),
    path("jobs/<int:pk>/cancel", jobs.job_cancel_view, name="curation-job-cancel"),
    path("jobs/<int:pk>/retry", jobs.job_retry_view, name="curation-job-retry"),
    path(
        "trajectories/<int:pk>/", trajectories.trajectory_detail, name="curation-trajectory-detail"
    ),
    path(
        "trajectories/<int:pk>/steps/<int:step>/label",
        trajectories.step_label,
        name="curation-step-label",
    ),
    path(
        "trajectories/<int:pk>/steps/<int:step>/history",
        trajectories.step_history,
        name="curation-step-history",
    ),
    path(
        "trajectories/<int:pk>/steps/<int:step>/check",
        trajectories.check_finding_decide_view,
        name="curation-check-finding-decide",
    ),
    path("trajectories/<int:pk>/hint", trajectories.hint_create, name="curation-hint-create"),
    path(
        "trajectories/<int:pk>/diagnose",
        trajectories.trajectory_diagnose,
        name="curation-trajectory-diagnose",
    ),
    path(
        "trajectories/<int:pk>/suggestions/<int:diagnosis>/dismiss",
        trajectories.suggestion_dismiss,
        name="curation-suggestion-dismiss",
    ),
    path(
        "trajectories/<int:pk>/decide",
        trajectories.trajectory_decide,
        name="curation-trajectory-decide",
    ),
    path(
        "trajectories/<int:left>/compare/<int:right>/",
        compare.trajectory_compare,
        name="curation-trajectory-compare",
    ),
    path("batches/", batches.batch_list, name="curation-batch-list"),
    path("batches/new", batches.batch_new, name="curation-batch-new"),
    path("batches/<int:pk>/", batches.batch_detail, name="curation-batch-detail"),
    path(
        "batches/<int:pk>/<str:action>",
        batches.batch_control,
        name="curation-batch-control",
    ),
    path("datasets/", datasets.dataset_list, name="curation-dataset-list"),
    path("datasets/freeze", datasets.dataset_freeze_view, name="curation-dataset-freeze"),
    path("datasets/<int:pk>/", datasets.dataset_detail, name="curation-dataset-detail"),
    path(
        "datasets/<int:pk>/files/<str:name>",
        datasets.dataset_download,
        name="curation-dataset-download",
    ),
    path("agreement/", agreement.agreement_page, name="curation-agreement"),
    path("agreement/cell", agreement.agreement_cell, name="curation-agreement-cell"),
    path("trajectories/<int:pk>/comments", comments.comment_create, name="curation-comment-create"),
    path(
        "trajectories/<int:pk>/comments/<int:comment>/resolve",
        comments.comment_resolve_view,
        name="curation-comment-resolve",
    ),
    path("review/", review.review_queue_page, name="curation-review-queue"),
    path("review/next", review.review_next_view, name="curation-review-next"),
    path("review/export", review.review_export_view, name="curation-review-export"),
    path("review/assign", review.review_assign_view, name="curation-review-assign"),
    path(
        "review/batches/<int:pk>/approvals",
        review.batch_review_policy_view,
        name="curation-batch-review-policy",
    ),
    path("review/adjudication/", review.adjudication_page, name="curation-review-adjudication"),
    path("trajectories/<int:pk>/lock/renew", review.lock_renew, name="curation-lock-renew"),
    path(
        "trajectories/<int:pk>/lock/take-over",
        review.lock_take_over,
        name="curation-lock-take-over",
    ),
    path("trajectories/<int:pk>/lock/release", review.lock_release, name="curation-lock-release"),
]
