"""The flaw taxonomy, stored as data so an admin can change it without a migration."""

from __future__ import annotations

from django.db import models


class FlawCategory(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "flaw categories"

    def __str__(self) -> str:
        return self.name


class FlawType(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    category = models.ForeignKey(FlawCategory, on_delete=models.PROTECT, related_name="types")
    description = models.TextField(blank=True)
    hint_template = models.TextField(blank=True, help_text="A template hint reviewers can pick.")
    order = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["category__order", "order", "name"]

    def __str__(self) -> str:
        return self.name

    def as_engine_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "category": self.category.name,
            "description": self.description,
            "hint_template": self.hint_template,
        }
