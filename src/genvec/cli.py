"""The `genvec` command line: one verb per public function, each a thin parse -> call -> print.

    genvec encode --model DIR "where do polar bears live?" --normalize --output vectors.npy

User errors print `error: <message>` and exit with status 2; `--debug` shows the traceback instead. This is the only
module that prints or configures logging.
"""

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from genvec import __version__
from genvec.errors import GenVecError, InputError

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
    except GenVecError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
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


def _add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="*", help="texts to embed (or use --input)")
    parser.add_argument("--input", type=Path, help="a text file, one text per line")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--instruction", help="instruction put before every text")
    role.add_argument("--query", action="store_true", help="use the model's query instruction")
    role.add_argument("--document", action="store_true", help="use the model's document instruction")
    parser.add_argument("--output", type=Path, help="write .npy (array) or .jsonl (one record per text); default stdout")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--max-length", type=int, help="tokens per input, special tokens included")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")


def _run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from genvec import load_model
    from genvec.files import atomic_write

    texts = list(args.texts)
    if args.input is not None:
        texts += _read_lines(args.input)
    if not texts:
        raise InputError("no texts given; pass them as arguments or with --input FILE (one per line).")
    model = load_model(args.model, backbone=args.backbone, device=args.device, dtype=args.dtype)
    instruction = args.instruction
    if args.query or args.document:
        instruction = model.config.model.instructions.get("query" if args.query else "document")
    embeddings = model.encode(
        texts, instruction=instruction, batch_size=args.batch_size, max_length=args.max_length, normalize=args.normalize
    )
    if args.output is None:
        _write_records(sys.stdout, texts, embeddings)
    elif args.output.suffix == ".npy":
        with atomic_write(args.output, "wb") as file:
            np.save(file, embeddings)
    elif args.output.suffix == ".jsonl":
        with atomic_write(args.output, "w") as file:
            _write_records(file, texts, embeddings)
    else:
        raise InputError(f"--output {str(args.output)!r}: use a .npy or .jsonl file name.")
    if args.output is not None:
        print(f"wrote {embeddings.shape[0]} embeddings of size {embeddings.shape[1]} to {args.output}", file=sys.stderr)
    return 0


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"--input {str(path)!r} does not exist; pass a text file with one text per line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"--input {str(path)!r} is not UTF-8 text ({err}); pass a text file, one text per line.") from err
    return [line for line in lines if line.strip()]


def _write_records(file, texts: list[str], embeddings) -> None:
    for index, (text, vector) in enumerate(zip(texts, embeddings)):
        file.write(json.dumps({"index": index, "text": text, "embedding": [round(float(x), 7) for x in vector]}) + "\n")


# ------------------------------------------------------------------------------------------------------ decode


def _add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="*", help="texts to compress and decode (or use --input)")
    parser.add_argument("--input", type=Path, help="a text file, one text per line")
    parser.add_argument("--instruction", help="instruction put before every text")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="most tokens generated per text (default: 128)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    parser.add_argument("--seed", type=int, help="seed for reproducible sampling")
    parser.add_argument("--batch-size", type=int, default=16, help="texts decoded together (default: 16)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line: index, text, decoded")


def _run_decode(args: argparse.Namespace) -> int:
    from genvec import load_model

    texts = list(args.texts) + (_read_lines(args.input) if args.input is not None else [])
    if not texts:
        raise InputError("no texts given; pass them as arguments or with --input FILE (one per line).")
    model = load_model(args.model, backbone=args.backbone, device=args.device, dtype=args.dtype)
    decoded = model.decode(
        texts, instruction=args.instruction, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, batch_size=args.batch_size,
    )
    for index, (text, output) in enumerate(zip(texts, decoded)):
        if args.json:
            print(json.dumps({"index": index, "text": text, "decoded": output}, ensure_ascii=False))
        else:
            print(f"[{index}] {text}\n{output}\n")
    return 0


# ------------------------------------------------------------------------------------------------------ inspect


def _add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("texts", nargs="+", help="texts to inspect")
    parser.add_argument("--top-k", type=int, default=10, help="tokens listed per view (default: 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object per text and line")


def _run_inspect(args: argparse.Namespace) -> int:
    from genvec import load_model

    model = load_model(args.model, backbone=args.backbone, device=args.device, dtype=args.dtype)
    for text in args.texts:
        lens = model.inspect(text, top_k=args.top_k)
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
    from genvec.checkpoint import convert

    model = convert(args.source, args.output, backbone=args.backbone, device=args.device, revision=args.revision)
    print(f"wrote a genvec checkpoint of {model.extra_repr()} to {args.output}", file=sys.stderr)
    return 0


VERBS: dict[str, tuple[Callable, Callable, str]] = {
    "encode": (_add_encode_arguments, _run_encode, "embed texts with a genvec model"),
    "decode": (_add_decode_arguments, _run_decode, "turn texts' embeddings back into text (the LLM reads them)"),
    "inspect": (_add_inspect_arguments, _run_inspect, "logit lens: top tokens at each special-token position"),
    "convert": (_add_convert_arguments, _run_convert, "write an official LLM2Vec-Gen release as a genvec checkpoint"),
}
