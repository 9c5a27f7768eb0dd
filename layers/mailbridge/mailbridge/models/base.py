"""The base of mailbridge's pydantic models.

`defer_build`: pydantic builds a model's validator when the class is defined, which for the ~100
models the API imports is a large part of the cold start; deferred, each model is built the first
time it is used, so a cold start pays only for the models its request touches.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
