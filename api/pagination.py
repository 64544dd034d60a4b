"""Limit/offset pagination with bounds: a huge offset is a 400, never a database error."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 1_000_000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_offset(self, request):
        offset = super().get_offset(request)
        if offset > MAX_OFFSET:
            raise exceptions.ValidationError({"offset": f"must be at most {MAX_OFFSET}"})
        return offset
