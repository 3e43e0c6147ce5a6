from usseg.provenance import code_version, describe_path, sha256_file


def test_folder_digest_changes_with_content_and_names(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.npy").write_bytes(b"1")
    first = describe_path(tmp_path / "d")
    assert first["files"] == 1
    (tmp_path / "d" / "a.npy").write_bytes(b"2")
    second = describe_path(tmp_path / "d")
    assert second["sha256"] != first["sha256"]
    (tmp_path / "d" / "a.npy").rename(tmp_path / "d" / "b.npy")
    assert describe_path(tmp_path / "d")["sha256"] != second["sha256"]


def test_file_digest_is_sha256(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert describe_path(tmp_path / "missing")["missing"] is True


def test_code_version_outside_git(tmp_path):
    assert code_version(tmp_path)["git_commit"] is None


def test_folder_digest_ignores_snakemakes_timestamp_marker(tmp_path):
    """Snakemake adds .snakemake_timestamp to a directory() output after its rule recorded it:
    the folder must still match its record (else every run reads "not current")."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.npy").write_bytes(b"1")
    recorded = describe_path(tmp_path / "d")
    (tmp_path / "d" / ".snakemake_timestamp").write_bytes(b"")
    assert describe_path(tmp_path / "d") == recorded
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / ".snakemake_timestamp").write_bytes(b"")
    assert describe_path(tmp_path / "d") == recorded
    # A real file of the same name pattern elsewhere still counts.
    (tmp_path / "d" / "b.npy").write_bytes(b"")
    assert describe_path(tmp_path / "d")["files"] == 2
