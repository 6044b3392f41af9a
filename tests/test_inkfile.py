"""One reader for every ink file (hwr.inkfile): the app's upload, `hwr transcribe` on a file and on
a folder, and `hwr data import` accept the same suffixes, read the same ink from the same file
and refuse an unknown suffix with the same sentence."""

import numpy as np
import pytest
from conftest import synthetic_line

from hwr import inkfile
from hwr.canvas import ink_from_upload
from hwr.cli import main as hwr_main
from hwr.exporters import ink_to_inkml
from hwr.importers import DataImportError, import_to_store
from hwr.ink import Ink, InkError
from hwr.store import Store
from hwr.transcribe import iter_inputs

IMPORT_FORMAT = {".inkml": "inkml", ".xml": "inkml", ".json": "json", ".jsonl": "json", ".ndjson": "json"}


def _file_bytes(suffix: str, ink: Ink) -> bytes:
    if suffix in (".inkml", ".xml"):
        return ink_to_inkml(ink).encode()
    if suffix == ".json":
        return ink.to_json().encode()
    return ("\n" + ink.to_json() + "\n").encode()  # JSON Lines: a blank line still counts in the ids


def _same(a: Ink, b: Ink) -> None:
    assert a.text == b.text and [len(s) for s in a.strokes] == [len(s) for s in b.strokes]
    assert [s.pointer_type for s in a.strokes] == [s.pointer_type for s in b.strokes]
    np.testing.assert_allclose(a.points(), b.points(), rtol=1e-6, atol=1e-3)  # a store keeps float32


def _imported(fmt: str, source, out) -> list:
    import_to_store(fmt, [str(source)], out, progress=False)
    with Store(out) as s:
        return list(s)


def test_every_entry_accepts_the_same_suffixes():
    assert set(IMPORT_FORMAT) == set(inkfile.FILE_SUFFIXES)
    for suffix in inkfile.SUFFIXES:
        assert inkfile.kind(f"a/b{suffix.upper()}") == inkfile.KINDS[suffix]  # case does not matter


@pytest.mark.parametrize("suffix", [".inkml", ".xml", ".json", ".jsonl"])
def test_upload_transcribe_and_import_read_the_same_ink(tmp_path, suffix):
    ink = synthetic_line("ab c", seed=3)[0]
    ink.strokes[0].pointer_type = "pen"
    data = _file_bytes(suffix, ink)
    folder = tmp_path / "in"
    (folder / "w1").mkdir(parents=True)
    f = folder / "w1" / f"x{suffix}"
    f.write_bytes(data)
    suffix_id = "#1" if suffix == ".jsonl" else ""  # line 1 (from 0) of a JSON Lines file

    uploaded = ink_from_upload(f.name, data)
    ((file_id, _, from_file),) = iter_inputs([str(f)])
    ((folder_id, _, from_folder),) = iter_inputs([str(folder)])
    (imported_file,) = _imported(IMPORT_FORMAT[suffix], f, tmp_path / "f.h5")
    (imported_folder,) = _imported(IMPORT_FORMAT[suffix], folder, tmp_path / "d.h5")

    assert file_id == imported_file.id == f"{f}{suffix_id}"
    assert folder_id == imported_folder.id == f"w1/x{suffix}{suffix_id}"
    for other in (from_file, from_folder, imported_file.ink, imported_folder.ink):
        _same(uploaded, other)
    if suffix in (".inkml", ".xml"):
        assert uploaded.strokes[0].pointer_type == ""  # InkML has no pointer type; JSON keeps it


def test_an_unknown_suffix_is_the_same_one_line_error_everywhere(tmp_path, capsys):
    f = tmp_path / "in" / "x.txt"
    f.parent.mkdir()
    f.write_text(synthetic_line("ab")[0].to_json())
    with pytest.raises(InkError) as e:
        inkfile.kind(f)
    msg = str(e.value)
    assert "\n" not in msg and "'.txt'" in msg and ".inkml" in msg

    with pytest.raises(InkError) as e:
        ink_from_upload(f.name, f.read_bytes())
    assert str(e.value) == msg
    ((_, _, error),) = iter_inputs([str(f)])
    assert isinstance(error, InkError) and str(error) == msg
    assert list(iter_inputs([str(f.parent)])) == []  # in a folder, other files are left alone
    for fmt in ("inkml", "json"):
        with pytest.raises(DataImportError) as e:
            import_to_store(fmt, [str(f)], tmp_path / "o.h5", progress=False)
        assert str(e.value) == f"{f}: {msg}"
        assert hwr_main(["data", "import", fmt, str(f), "--out", str(tmp_path / "o.h5")]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "o.h5").exists()


def test_an_ink_file_of_the_other_import_format_names_the_right_command(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(synthetic_line("ab")[0].to_json())
    with pytest.raises(DataImportError, match=r"JSON Lines file; import it with `hwr data import json`"):
        import_to_store("inkml", [str(f)], tmp_path / "o.h5", progress=False)


def test_an_upload_holds_exactly_one_ink(tmp_path):
    a, b = synthetic_line("ab")[0].to_json(), synthetic_line("ba", seed=1)[0].to_json()
    with pytest.raises(InkError, match="x.jsonl holds 2 inks; upload a file with one ink"):
        ink_from_upload("x.jsonl", f"{a}\n{b}\n".encode())
    with pytest.raises(InkError, match="x.jsonl holds no inks"):
        ink_from_upload("x.jsonl", b"\n\n")
    with pytest.raises(InkError, match="hwr transcribe"):
        ink_from_upload("x.h5", b"\x89HDF\r\n\x1a\n")
    with pytest.raises(InkError, match="unreadable JSON"):  # a JSON Lines file's one line, unreadable
        ink_from_upload("x.jsonl", b"{nope\n")


def test_a_file_that_cannot_be_read_fails_alike_in_transcribe_and_import(tmp_path):
    f = tmp_path / "bad.inkml"
    f.write_text("<ink><trace>1 2, 3")
    ((_, _, error),) = iter_inputs([str(f)])
    assert str(error).startswith("unreadable InkML (")
    with pytest.raises(DataImportError, match="bad.inkml: unreadable InkML"):
        import_to_store("inkml", [str(f)], tmp_path / "o.h5", progress=False)
    with pytest.raises(InkError, match="unreadable InkML"):
        ink_from_upload(f.name, f.read_bytes())
