"""``advertisex ingest`` fails when nothing landed and shows real sizes; a batch that was all
quarantined is a warning, not only "every record accounted for"."""

from __future__ import annotations

import json
from pathlib import Path


def test_ingest_of_only_unrecognised_files_fails_and_shows_their_sizes(cli, tmp_path, seed_samples):
    files = [seed_samples / "README.md", seed_samples / "bid_requests.schema.json"]
    code, out, err = cli(tmp_path / "data", "ingest", *map(str, files), "--format", "json")
    assert code == 2 and "nothing landed: all 2 files were skipped" in err
    rows = json.loads(out)
    assert [r["bytes"] for r in rows] == [f.stat().st_size for f in files]
    assert all(r["status"] == "skipped" for r in rows)


def test_ingest_names_a_compression_or_encoding_it_does_not_read_even_with_source(
    cli, tmp_path, seed_samples
):
    """A bzip2'd, xz'd or zip'd file of impressions (gzip'd again or not), or a gzip'd
    UTF-16 one, is skipped with what it is and what to do, --source or not: landed, every
    record would be quarantined as bytes."""
    import bz2
    import gzip
    import lzma
    import zipfile

    text = (seed_samples / "ad_impressions.json").read_bytes()
    files = {
        "a.json.bz2": bz2.compress(text),
        "b.json.xz": lzma.compress(text),
        "c.json.gz": gzip.compress(b"\xff\xfe" + text.decode().encode("utf-16-le")),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        archive.writestr("ad_impressions.json", text)
    (tmp_path / "e.zip.gz").write_bytes(gzip.compress((tmp_path / "d.zip").read_bytes()))
    paths = [str(tmp_path / name) for name in [*files, "d.zip", "e.zip.gz"]]
    for source in ([], ["--source", "impressions"]):
        code, out, err = cli(tmp_path / "data", "ingest", *paths, *source, "--format", "json")
        assert code == 2 and "nothing landed" in err and "--source" not in err
        details = [r["detail"].split(":")[0] for r in json.loads(out)]
        assert details == [
            "compressed with bzip2",
            "compressed with xz",
            "UTF-16 text, gzip'd",
            "a zip archive",
            "a zip archive, gzip'd",
        ]


def test_a_utf16_file_lands_as_utf8_and_reads_as_the_same_records(cli, tmp_path, seed_samples):
    """Excel's "Unicode text" and other Windows tools write UTF-16 with a byte order mark:
    such a file is landed as UTF-8 (each encoding, each byte order), indexed by its own
    bytes (ingested again: a no-op); one that does not decode is skipped, saying why."""
    impressions = (seed_samples / "ad_impressions.json").read_bytes()
    clicks = (seed_samples / "clicks_conversions.csv").read_bytes()
    utf16 = tmp_path / "utf16"
    utf16.mkdir()
    (utf16 / "imps.json").write_bytes(b"\xfe\xff" + impressions.decode().encode("utf-16-be"))
    tabbed = clicks.decode().replace(",", "\t").encode("utf-16")  # with its BOM, as Excel
    (utf16 / "clicks.txt").write_bytes(tabbed)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "imps.json").write_bytes(impressions)
    (plain / "clicks.csv").write_bytes(clicks.decode().replace(",", "\t").encode())

    counts = {}
    for folder in (utf16, plain):
        data = tmp_path / f"data-{folder.name}"
        code, out, err = cli(data, "ingest", str(folder), "--format", "json")
        assert code == 0, err
        assert {r["status"] for r in json.loads(out)} == {"landed"}
        code, out, err = cli(data, "process", "--format", "json")
        assert code == 0, err
        counts[folder.name] = {
            s["source"]: (s["records_in"], s["accepted"]) for s in json.loads(out)["sources"]
        }
    assert counts["utf16"] == counts["plain"] and counts["utf16"]["impressions"][1] > 0
    code, out, _ = cli(tmp_path / "data-utf16", "ingest", str(utf16), "--format", "json")
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"already"}

    (tmp_path / "odd.json").write_bytes(b"\xff\xfe{\x00a")  # a lone byte at the end
    code, out, _ = cli(tmp_path / "data-utf16", "ingest", str(tmp_path / "odd.json"), "-f", "json")
    assert code == 2
    assert json.loads(out)[0]["detail"].startswith("UTF-16 text that does not decode")


def test_process_names_a_damaged_file_and_what_to_do(cli, tmp_path, seed_samples):
    import gzip

    text = (seed_samples / "ad_impressions.json").read_bytes()
    member = bytearray(gzip.compress(text))
    member[len(member) // 2] ^= 0xFF
    damaged = tmp_path / "imps.json.gz"
    damaged.write_bytes(gzip.compress(text[: text.index(b"\n") + 1]) + bytes(member))
    assert cli(tmp_path / "data", "ingest", str(damaged))[0] == 0
    code, out, err = cli(tmp_path / "data", "process")
    assert code == 0, err
    said = " ".join((out + err).split())
    assert "damaged impressions/" in said and "have the producer send the file again" in said
    assert "gzip_damaged: the gzip member at byte" in said


def test_ingest_of_files_already_landed_is_a_successful_no_op(cli, tmp_path, seed_samples):
    data, file = tmp_path / "data", str(seed_samples / "clicks_conversions.csv")
    assert cli(data, "ingest", file)[0] == 0
    code, _, err = cli(data, "ingest", file)
    assert code == 0 and "0 landed, 1 already ingested" in err and "Next:" not in err


def test_a_batch_quarantined_whole_is_a_warning(cli, tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"timestamp": "not a time", "user_id": "u"}\n{"website": "w"}\n')
    data = tmp_path / "data"
    assert cli(data, "ingest", str(bad), "--source", "impressions")[0] == 0
    code, _, err = cli(data, "process")
    assert code == 0
    assert "warning: every one of the 2 impressions records was quarantined" in err


def test_ingest_of_an_empty_folder_or_a_mistyped_path_fails_and_makes_no_lake(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("x")
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", str(tmp_path / "empty"))
    assert code == 2 and "holds no file to ingest" in err
    code, _, err = cli(data, "ingest", str(tmp_path / "nope" / "*.csv"))
    assert code == 2 and "no such file, folder or matching glob" in err
    assert not data.exists() and "created a new lake" not in err


def test_bids_and_clicks_as_json_files_land_as_json(cli, tmp_path):
    """Segments were named by their source alone: bids sent as JSON lines landed named
    Avro and were set aside whole as ``avro_unreadable``, clicks as JSON parsed as CSV.
    The collector takes both as JSON; so does ingest now."""
    bid = {
        "auction_id": "a-1",
        "exchange": "x",
        "timestamp": "2026-11-20T10:00:00Z",
        "campaign_id": "cmp-1",
        "ad_creative_id": "cr-1",
        "user_id": "u-1",
        "bid_price": 1.2,
    }
    click = {"event_id": "e-1", "timestamp": "2026-11-20T10:00:05Z", "user_id": "u-1",
             "campaign_id": "cmp-1", "ad_creative_id": "cr-1", "event_type": "click"}  # fmt: skip
    (tmp_path / "bids.json").write_text(
        "\n".join(json.dumps({**bid, "auction_id": f"a-{k}"}) for k in range(3)) + "\n"
    )
    (tmp_path / "clicks.json").write_text(json.dumps([click, {**click, "event_id": "e-2"}]))
    data = tmp_path / "data"
    for name, source in (("bids.json", "bids"), ("clicks.json", "clicks")):
        code, out, _ = cli(
            data, "ingest", str(tmp_path / name), "--source", source, "--format", "json"
        )
        assert code == 0 and json.loads(out)[0]["segment"].endswith(".ndjson")
    code, out, err = cli(data, "process", "--format", "json")
    assert code == 0, err
    accepted = {s["source"]: (s["accepted"], s["quarantined"]) for s in json.loads(out)["sources"]}
    assert accepted == {"bids": (3, 0), "clicks": (2, 0)}


def test_a_folders_links_out_of_it_and_its_pipes_are_named_and_not_read(
    cli, tmp_path, seed_samples
):
    """A drop folder's ``partner.csv -> /etc/passwd`` (SFTP lets a partner make links) landed
    that file with --source clicks, its lines then shown as quarantined records to every
    reader of the lake; a pipe in a folder was passed over without a word. A link within
    the folder is read, and a pipe or a link named on the command line is read as asked."""
    import os
    import threading

    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_bytes((seed_samples / "clicks_conversions.csv").read_bytes())
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "clicks.csv").write_bytes(
        b"timestamp,user_id,campaign_id,event_type\n2026-12-06T10:00:00Z,u1,cmp-001,click\n"
    )
    (inbox / "partner.csv").symlink_to("/etc/passwd")
    (inbox / "sub" / "secret.csv").symlink_to(secret)
    (inbox / "within.csv").symlink_to(inbox / "sub" / "clicks.csv")
    (inbox / "gone.csv").symlink_to(tmp_path / "nothing")
    os.mkfifo(inbox / "pipe.csv")
    data = tmp_path / "data"
    code, out, err = cli(data, "ingest", "--source", "clicks", str(inbox), "--format", "json")
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert code == 0, err
    assert {name: r["status"] for name, r in rows.items()} == {
        "clicks.csv": "landed",
        "within.csv": "already",  # read: the same bytes as clicks.csv
        "partner.csv": "skipped",
        "secret.csv": "skipped",
        "gone.csv": "skipped",
        "pipe.csv": "skipped",
    }
    for name in ("partner.csv", "secret.csv"):
        assert rows[name]["detail"].startswith("a symbolic link out of"), rows[name]
        assert rows[name]["bytes"] == 0  # not even opened
    assert rows["gone.csv"]["detail"].startswith("a symbolic link to nothing")
    assert rows["pipe.csv"]["detail"].startswith("a pipe: not read in a folder")
    assert len(list((data / "landing" / "clicks").rglob("*.csv"))) == 1
    # Named, each is read: the link to the outside file, the pipe as its writer writes.
    writer = threading.Thread(target=(inbox / "pipe.csv").write_bytes, args=(secret.read_bytes(),))
    writer.start()
    code, out, err = cli(data, "ingest", str(inbox / "sub" / "secret.csv"), str(inbox / "pipe.csv"))
    writer.join()
    assert code == 0 and "1 landed, 1 already ingested" in err, (out, err)


def test_a_folders_file_swapped_for_a_link_after_the_walk_is_not_read(cli, tmp_path, monkeypatch):
    """The walk checked each name, and reading opened the name again: a partner swapping a
    file (or a folder above it) for a link out of the drop folder, or for a pipe, in
    between had the link's target read. What is read is checked on what was opened."""
    import os
    import shutil

    from advertisex.landing import zone

    header = b"timestamp,user_id,campaign_id,event_type\n"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(header + b"2026-12-06T10:00:00Z,SECRET1,c,click\n")
    (outside / "clicks.csv").write_bytes(header + b"2026-12-06T10:00:00Z,SECRET2,c,click\n")
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    for name, user in [("stays.csv", "u1"), ("partner.csv", "u2"), ("late.csv", "u3")]:
        (inbox / name).write_bytes(header + b"2026-12-06T10:00:00Z,%s,c,click\n" % user.encode())
    (inbox / "sub" / "clicks.csv").write_bytes(header + b"2026-12-06T10:00:00Z,u4,c,click\n")
    expand = zone.expand_paths

    def swapping(paths, passed_over=None, *more):  # type: ignore[no-untyped-def]
        files = expand(paths, passed_over, *more)
        if passed_over is not None:  # ingest's own walk is done, the reading is to come
            (inbox / "partner.csv").unlink()
            (inbox / "partner.csv").symlink_to(outside / "secret.csv")
            shutil.rmtree(inbox / "sub")
            (inbox / "sub").symlink_to(outside)
            (inbox / "late.csv").unlink()
            os.mkfifo(inbox / "late.csv")
        return files

    monkeypatch.setattr(zone, "expand_paths", swapping)
    data = tmp_path / "data"
    code, out, err = cli(data, "ingest", "--source", "clicks", str(inbox), "--format", "json")
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert {name: r["status"] for name, r in rows.items()} == {
        "stays.csv": "landed",
        "partner.csv": "skipped",
        "clicks.csv": "skipped",
        "late.csv": "skipped",
    }
    for name in ("partner.csv", "clicks.csv"):
        assert rows[name]["detail"] == (
            "replaced since its folder was read by a link out of the folder: not read"
        )
    assert rows["late.csv"]["detail"].endswith("not a regular file now: not read")
    landed = b"".join(p.read_bytes() for p in (data / "landing").rglob("*.csv"))
    assert b"u1" in landed and b"SECRET" not in landed
