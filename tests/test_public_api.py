"""The public surface is exactly __all__: removing or adding a name is a decision."""

import inspect

import aiohttp_conditional


def test_all() -> None:
    assert aiohttp_conditional.__all__ == (
        "ConditionalFileResponse",
        "ConditionalStaticResource",
        "FileResponseState",
        "add_static",
        "static",
    )


def test_every_name_in_all_is_importable_and_documented() -> None:
    for name in aiohttp_conditional.__all__:
        obj = getattr(aiohttp_conditional, name)
        assert obj.__doc__
        assert obj.__module__.startswith("aiohttp_conditional.")


def test_version() -> None:
    assert isinstance(aiohttp_conditional.__version__, str)


def test_help_shows_our_own_documentation() -> None:
    # Not aiohttp's note on its internal _real_headers, inherited by help().
    for cls in (
        aiohttp_conditional.ConditionalFileResponse,
        aiohttp_conditional.ConditionalStaticResource,
    ):
        text = inspect.getdoc(cls.__init__)
        assert text is not None
        assert "_real_headers" not in text
        assert "ValueError" in text
