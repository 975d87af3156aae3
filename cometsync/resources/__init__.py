"""The client's resource namespaces, one module each, as openai-python lays them out."""

from __future__ import annotations

from .catalog import Catalog
from .chat import Chat, Completions
from .embeddings import Embeddings
from .models import Models

__all__ = ["Catalog", "Chat", "Completions", "Embeddings", "Models"]
