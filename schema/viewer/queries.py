from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.viewer.types import Viewer


@strawberry.type
class ViewerQuery:
    @strawberry.field(description="The caller as the token describes it; works unauthenticated.")
    def viewer(self, info: Info[Context, Any]) -> Viewer:
        return Viewer.from_model(info.context.principal)
