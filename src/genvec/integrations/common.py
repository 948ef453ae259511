"""What every adapter shares: a model given loaded or as a checkpoint to load, and the check of a framework's list
of texts."""

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

from genvec.errors import InputError
from genvec.loading import load_model
from genvec.model import GenVecModel


def resolve_model(model: str | Path | GenVecModel, device: str = "auto") -> GenVecModel:
    """`model` itself when loaded, else the checkpoint it names, loaded on `device`."""
    if isinstance(model, GenVecModel):
        return model
    return load_model(model, device=device)


def cached_model(model: str, device: str) -> GenVecModel:
    """The checkpoint `model` loaded on `device`, once while it is the latest one asked for in this process and its
    files are unchanged: for the vector stores' embedding functions, which the stores rebuild from their saved config
    for every table or collection opened (LanceDB for every `add` too). A local checkpoint written again in place (a
    retrained model saved to the same directory) is loaded again, not served stale."""
    return _loaded(model, device, _files_stamp(model))


@functools.lru_cache(maxsize=1)
def _loaded(model: str, device: str, stamp: tuple) -> GenVecModel:
    return load_model(model, device=device)


def _files_stamp(model: str) -> tuple:
    """Name, size and modification time of every file of a local checkpoint directory; () for a hub id."""
    path = Path(model)
    if not path.is_dir():
        return ()
    return tuple(sorted((str(file.relative_to(path)), file.stat().st_size, file.stat().st_mtime_ns)
                        for file in path.rglob("*") if file.is_file()))


def text_list(texts: object, method: str, single: str) -> list[str]:
    """`texts` (a list, tuple or other iterable of texts) as a list, for a framework method that takes several.

    A string is iterable too, and `list("abc")` would embed "a", "b" and "c"; None would read as no texts at all.
    Both are refused here; the items themselves are checked by the model's front door (`inference.prepare`).

    Raises:
        InputError: `texts` is None, a string or bytes, a mapping, or not iterable (`param="texts"`); the message
            names `method` and points to `single`, the method for one text.
    """
    if isinstance(texts, (str, bytes)):
        raise InputError(f"{method} takes a list of texts, got one {type(texts).__name__} ({texts!r:.40}); pass "
                         f"[text], or use {single} for a single text.", param="texts")
    if texts is None or isinstance(texts, Mapping) or not isinstance(texts, Iterable):
        raise InputError(f"{method} takes a list of texts, got {type(texts).__name__} ({texts!r:.40}); pass a list of "
                         "strings ([] for none).", param="texts")
    return list(texts)


def one_text(text: object, method: str, fix: str) -> str:
    """`text` itself when it is a string, for a framework method that embeds one text.

    Raises:
        InputError: anything but a string (`param="text"`); the message ends with `fix`, e.g. "use embed_documents
            for a list of texts".
    """
    if not isinstance(text, str):
        raise InputError(f"{method} takes one text (a string), got {type(text).__name__} ({text!r:.40}); {fix}.",
                         param="text")
    return text
