"""Opening the CSVs a user hands in, one way for every reader: ``labels.csv`` (generic adapter), official
ISIC ground truths (:mod:`skinbench.data.isic_csv`) and ``skinbench score`` submissions.

Why one place: a file that one reader accepts and another misreads gives wrong numbers or baffling errors.
Excel's "CSV UTF-8" starts with a byte-order mark, which a plain ``open`` keeps in the first header cell
(``\\ufeffimage``, so the header is not recognised); Excel in a decimal-comma locale writes ``;``-separated
files; a hand-edited file has ``ISIC_1 , 0.5``. Here:

* text is UTF-8 with or without a byte-order mark; anything else (Latin-1, UTF-16) is refused, naming the fix;
* a ``;``- or tab-separated file (no comma in its first line) is refused rather than read as one column;
* image ids lose leading/trailing whitespace (:func:`strip_ids`), said in one line that counts them: no
  dataset names a file with a space at either end, a stripped id that collides with another or names no
  image is still an error downstream, so stripping never turns into a wrong number, and the line says it
  happened.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

from skinbench.errors import DataError
from skinbench.progress import note

#: first-column headers that name the image id (case-insensitive), in every CSV the suite reads
ID_HEADERS = ("image_id", "image", "image_name", "isic_id", "id")
SAVE_AS = 'save it as "CSV UTF-8 (comma delimited)"'


def read_text(path: str | os.PathLike, what: str = "CSV") -> str:
    """The file's text (a UTF-8 byte-order mark dropped); DataError, naming ``what`` and the fix, for a file
    that is missing, not UTF-8, or separated by something other than commas."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} not found", path=path, fix="check the path") from None
    except OSError as err:
        raise DataError(f"cannot read the {what} ({err.strerror or err})", path=path,
                        fix="pass a readable CSV file") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"the {what} is UTF-16 text (Excel's \"Unicode Text\")", path=path, fix=SAVE_AS)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"line {line}: the {what} is not UTF-8 text (byte {raw[err.start]:#04x})", path=path,
                        fix=SAVE_AS) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," not in first:
        for sep, name in ((";", "semicolons"), ("\t", "tabs")):
            if sep in first:
                raise DataError(f"the {what} is separated by {name}, not commas", path=path,
                                fix=f"{SAVE_AS}, with '.' as the decimal point")
    return text


def read_rows(path: str | os.PathLike, what: str = "CSV") -> list[tuple[int, list[str]]]:
    """``(file line, cells)`` of every non-blank row of the CSV at ``path`` (read by :func:`read_text`);
    trailing empty cells (a trailing comma) are dropped."""
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""))
    rows = []
    try:
        for row in reader:
            while row and not row[-1].strip():
                row = row[:-1]
            if row:
                rows.append((reader.line_num, row))
    except csv.Error as err:
        raise DataError(f"line {reader.line_num}: cannot parse the {what} ({err})", path=path,
                        fix="write a comma-separated file (quote values holding commas)") from None
    return rows


def row_lines(text: str, n_rows: int) -> list[int]:
    """The 1-based file line of each data row of ``text`` (header and blank lines skipped, as pandas
    reads it); row i + 2 where the count disagrees with pandas'."""
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        lines = [reader.line_num for row in reader if row]
    except csv.Error:
        lines = []
    lines = lines[1:]  # the header
    return lines if len(lines) == n_rows else [i + 2 for i in range(n_rows)]


def strip_ids(ids: Sequence[str], lines: Sequence[int], path: str | os.PathLike) -> list[str]:
    """``ids`` without leading/trailing whitespace; when any had some, one line (stderr) counts them and
    names the first (see the module doc for why stripping, not refusing)."""
    out = [str(i).strip() for i in ids]
    changed = [k for k, (a, b) in enumerate(zip(ids, out)) if a != b]
    if changed:
        k = changed[0]
        note(f"{path}: {len(changed)} image id(s) have spaces before or after them, read without the spaces "
             f"(first: line {lines[k]}, {str(ids[k])!r})")
    return out
