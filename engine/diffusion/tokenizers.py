"""CLIP tokenizers for the diffusion text encoders, made offline from open_clip's bundled BPE.

A single checkpoint file carries no tokenizer, and the engine never downloads one. OpenAI's CLIP tokenizer (SD 1.x,
SDXL's first encoder) and OpenCLIP's (SD 2.x, SDXL's second) are the same byte-level BPE: 256 byte tokens, their
256 end-of-word forms, 48,894 merges, then <|startoftext|> (49406) and <|endoftext|> (49407): 49,408 tokens in all.
open_clip ships that BPE as `bpe_simple_vocab_16e6.txt.gz`, so its `vocab.json` and `merges.txt` (the files a
diffusers folder's `tokenizer/` holds) are written from it once into the model cache, atomically, and read from there.

The families differ only in the pad token: SD 1.x pads with <|endoftext|>, OpenCLIP encoders with id 0 ("!").
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..errors import RegiaError

BPE_FOLDER = "regia-tokenizers/clip-bpe-49408"
VOCAB_SIZE = 49408
MAX_LENGTH = 77
START, END = "<|startoftext|>", "<|endoftext|>"
PAD_BY_ENCODER = {"openai": END, "openclip": "!"}  # what each text encoder's diffusers tokenizer pads with
_MERGES = 49152 - 256 - 2  # lines of the BPE file that are merges, as CLIP's SimpleTokenizer reads it
_LOCK = threading.Lock()


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table (the first 256 tokens, in this order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def bpe_source() -> Path:
    """open_clip's bundled BPE merges (the same file every CLIP tokenizer was built from)."""
    from ..models.library import open_clip

    return Path(open_clip().tokenizer.default_bpe())


def bpe_tables() -> tuple[dict[str, int], list[str]]:
    """The vocabulary (token -> id) and the merges ("a b" lines, by rank), as Hugging Face's CLIP files hold them."""
    lines = gzip.decompress(bpe_source().read_bytes()).decode("utf-8").split("\n")
    merges = [" ".join(line.split()) for line in lines[1 : _MERGES + 1]]
    tokens = list(_bytes_to_unicode().values())
    tokens += [token + "</w>" for token in tokens]
    tokens += [merge.replace(" ", "") for merge in merges]
    tokens += [START, END]
    if len(tokens) != VOCAB_SIZE or len(set(tokens)) != VOCAB_SIZE:
        raise RegiaError(f"open_clip's BPE file {bpe_source()} does not give CLIP's {VOCAB_SIZE} tokens")
    return {token: index for index, token in enumerate(tokens)}, merges


def _complete(folder: Path) -> bool:
    return (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()


def bpe_files(cache: Path | None = None) -> Path:
    """The folder holding vocab.json and merges.txt, written on first use.

    They go to a temporary folder beside the final one, which is then renamed into place, so that a second process
    (or a crash half-way) never sees half a file: the loser of a race keeps the winner's identical files.
    """
    if cache is None:
        from ..models import cache_dir

        cache = cache_dir()
    folder = cache / BPE_FOLDER
    with _LOCK:
        if _complete(folder):
            return folder
        vocab, merges = bpe_tables()
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".clip-bpe-", dir=folder.parent))
            try:
                (staging / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
                (staging / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
                if folder.exists():  # an incomplete folder left by an older crash
                    shutil.rmtree(folder, ignore_errors=True)
                os.replace(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            if _complete(folder):  # another process renamed its copy into place first
                return folder
            raise RegiaError(
                f"cannot write the CLIP tokenizer files to {folder} ({exc.strerror or exc}); "
                "set REGIA_MODEL_CACHE to a writable folder"
            ) from None
        return folder


def clip_tokenizer(pad_token: str, cache: Path | None = None):
    """A CLIPTokenizer on the cached BPE files: 77 tokens, padded with `pad_token` (END or "!")."""
    from ..models.library import importing_optional

    with importing_optional():  # never while open_clip's import hides transformers
        from transformers import CLIPTokenizer

    if pad_token not in (END, "!"):
        raise ValueError(f"a CLIP tokenizer pads with {END!r} or '!', not {pad_token!r}")
    tokenizer = CLIPTokenizer.from_pretrained(
        str(bpe_files(cache)), pad_token=END, model_max_length=MAX_LENGTH, local_files_only=True
    )
    return with_pad(tokenizer, pad_token)


def with_pad(tokenizer, pad_token: str):
    """The tokenizer padding with `pad_token`, which stays an ordinary token when it is "!".

    Given to the constructor, a pad token becomes a special token that is split out of the text, so "horse!!" would
    tokenize as "!" "!" where OpenCLIP (which SD 2.x and SDXL's second encoder were trained with) reads one "!!".
    Set afterwards it only names the padding id (0).
    """
    tokenizer.pad_token = pad_token
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer
