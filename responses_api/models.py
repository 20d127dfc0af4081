"""Stored responses: one row per `POST /v1/responses` with `store` (the default), per tenant."""

from __future__ import annotations

from django.db import models

from keys.models import ApiKey, Tenant


class StoredResponse(models.Model):
    """A finished response, what `GET /v1/responses/{id}` returns and `previous_response_id`
    continues from: the request's own input items, the conversation before them (the previous
    response's context, input and output), and the response object as rendered."""

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="responses")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="responses")
    request_id = models.CharField(max_length=40, unique=True)
    model = models.CharField(max_length=200)
    previous_response_id = models.CharField(max_length=64, blank=True)
    context = models.JSONField(default=list, help_text="The conversation before this request's input.")
    input_items = models.JSONField(default=list, help_text="This request's input items, with ids.")
    output = models.JSONField(default=list)
    response = models.JSONField(help_text="The response object as returned.")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="responses_tenant_created")]

    def __str__(self) -> str:
        return self.id
