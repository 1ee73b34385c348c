"""Reference API built only from fastapi-secure blocks."""
