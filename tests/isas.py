"""The compiled engine's instruction-set levels this CPU runs, for tests that run each."""

from cgru.backends import compiled_available


def supported_isas() -> list[str]:
    """The levels of ``cgru._engine.ISAS`` this CPU supports (none without the engine)."""
    if not compiled_available():
        return []
    from cgru import _engine

    return [isa for isa in _engine.ISAS if _engine.isa_supported(isa)]
