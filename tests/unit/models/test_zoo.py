"""The teacher zoo: registry as checked data, checksums, the hub cache, downloads (never real)."""

import hashlib
import json
import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from srdistill.cli.builders import build_teacher
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.models import zoo
from srdistill.models.checkpoint import load_weights
from srdistill.models.registry import build_from_record, check_model
from tests.helpers.configs import CONF_DIR, compose_config
from tests.helpers.shared import requires_shared, shared_path

CONTENT = b"not really weights, only bytes with a known hash\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()
SHARED_SPAN = {"span_ch28_x4": "span_ch28_x4.pth", "span_tiny_ch26_x4": "span_tiny_ch26_x4.pth"}


def tiny_entry(**fields) -> zoo.ZooEntry:
    base = dict(
        name="tiny_x2",
        model="edsr_tiny_teacher",
        model_args={"scale": 2},
        scale=2,
        file="tiny_x2-0000.pt",
        source="written by the test",
        url="https://example.invalid/tiny_x2-0000.pt",
    )
    return zoo.ZooEntry(**{**base, **fields})


def fail_download(url, dst, progress=True):
    raise AssertionError(f"the test must not download {url}")


def one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_every_entry_is_checked_data_with_a_checksum_of_the_right_form():
    entries = zoo.load_registry()
    assert {"edsr_x4", "rcan_x4", "swinir_classical_df2k_x4", "span_ch28_x4"} <= set(entries)
    for name, item in entries.items():
        check_model(item.model, item.model_args)
        assert item.model_args["scale"] == item.scale and f"x{item.scale}" in name
        assert item.url or item.archive_url, name
        if item.sha256_prefix:  # EDSR: torch.hub's convention, the prefix ends the file name
            assert Path(item.file).stem.endswith(f"-{item.sha256_prefix}"), name
    assert entries["span_ch28_x4"].sha256 == (
        "6c80f05048313289c6526e5fc9726688d7bb3dfdd6ae3c8b1e7dd09f601e5971"
    )


def test_registry_fields_outside_the_allow_list_are_refused():
    record = {
        "model": "span_ch28",
        "model_args": {"scale": 4},
        "scale": 4,
        "file": "x.pth",
        "source": "s",
    }
    assert zoo.load_registry(json.dumps({"entries": {"ok": record}}))["ok"].scale == 4
    for bad in (
        {**record, "_target_": "os.system"},
        {**record, "model": "builtins.eval"},
        {**record, "file": "../../etc/passwd"},
        {**record, "sha256": "ABC"},
    ):
        with pytest.raises((ValueError, zoo.ZooError)):  # BuildRecordError for registry fields
            zoo.load_registry(json.dumps({"entries": {"bad": bad}}))


def test_every_entry_has_a_config_that_builds_its_architecture_and_vice_versa():
    entries = zoo.load_registry()
    files = {p.stem for p in (CONF_DIR / "teacher" / "zoo").glob("*.yaml")}
    assert files == set(entries)
    for name, item in entries.items():
        cfg = compose_config("train", [f"teacher=zoo/{name}", f"scale={item.scale}"])
        assert cfg.teacher.ckpt == f"zoo:{name}" and cfg.teacher.zoo == name
        arch = OmegaConf.to_container(cfg.teacher.arch, resolve=True)
        constructor, args = check_model(item.model, {k: v for k, v in arch.items() if k[0] != "_"})
        assert arch["_target_"].endswith(constructor.__qualname__)
        assert {k: args[k] for k in item.model_args} == item.model_args, name


def test_full_hash_and_published_prefix_verify_a_local_file(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT)
    assert zoo.verify(path, tiny_entry(sha256=DIGEST)) == DIGEST
    assert zoo.verify(path, tiny_entry(sha256_prefix=DIGEST[:8])) == DIGEST


def test_a_mismatch_is_refused_in_one_line_naming_file_and_both_hashes(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT + b"tampered")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(zoo.ZooError) as err:
        zoo.verify(path, tiny_entry(sha256=DIGEST))
    message = one_line(err.value)
    assert str(path) in message and DIGEST in message and actual in message


def test_an_entry_without_checksum_needs_a_pin_and_says_how(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT)
    with pytest.raises(zoo.ZooError) as err:
        zoo.verify(path, tiny_entry())
    message = one_line(err.value)
    assert f"teacher.sha256={DIGEST}" in message
    assert zoo.verify(path, tiny_entry(), pin=DIGEST.upper()) == DIGEST
    with pytest.raises(zoo.ZooError):
        zoo.verify(path, tiny_entry(), pin="0" * 64)


@pytest.mark.parametrize("pin", ["2", DIGEST[:8], DIGEST + "0", 12345678, 1.5, "g" * 64])
def test_a_pin_that_is_not_a_whole_sha256_is_refused_naming_the_option(tmp_path, pin):
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT)
    for item in (tiny_entry(), tiny_entry(sha256=DIGEST), None):
        with pytest.raises(zoo.ZooError) as err:
            zoo.verify(path, item, pin=pin)
        message = one_line(err.value)
        assert "teacher.sha256=" in message and "64 hex digits" in message


def test_a_published_sha256_cannot_be_overridden_by_a_pin(tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(b"another file the user happens to have")
    other_digest = hashlib.sha256(other.read_bytes()).hexdigest()
    for published in (tiny_entry(sha256=DIGEST), tiny_entry(sha256_prefix=DIGEST[:8])):
        with pytest.raises(zoo.ZooError) as err:
            zoo.verify(other, published, pin=other_digest)
        assert "cannot be overridden" in one_line(err.value)
    # repeating the published hash (or extending its prefix) is allowed
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT)
    assert zoo.verify(path, tiny_entry(sha256_prefix=DIGEST[:8]), pin=DIGEST) == DIGEST


def test_a_pin_checks_a_local_file_outside_the_zoo(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(CONTENT)
    assert zoo.verified_file(str(path), DIGEST, "ckpt") == str(path)
    with pytest.raises(zoo.ZooError) as err:
        zoo.verified_file(str(path), "0" * 64, "ckpt")
    assert str(path) in one_line(err.value)


def test_a_bad_pin_is_refused_before_any_download(hub):
    hub["tiny_x2"] = tiny_entry(sha256=DIGEST)
    with pytest.raises(zoo.ZooError, match="64 hex digits"):
        zoo.resolve("zoo:tiny_x2", pin="2", download=fail_download)


def test_a_cached_hub_file_is_verified_and_used_without_download(hub, monkeypatch):
    hub["tiny_x2"] = tiny_entry(sha256=DIGEST)
    cached = zoo.hub_file(hub["tiny_x2"])
    assert cached.parent == Path(torch.hub.get_dir()) / "checkpoints"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(CONTENT)
    monkeypatch.setattr(zoo, "download_url_to_file", fail_download)
    assert zoo.resolve("zoo:tiny_x2") == (cached, DIGEST)


def test_a_download_lands_in_the_hub_cache_only_when_its_checksum_matches(hub, monkeypatch):
    served = {"bytes": CONTENT}

    def serve(url, dst, progress=True):
        assert url == hub["tiny_x2"].url
        Path(dst).write_bytes(served["bytes"])

    hub["tiny_x2"] = tiny_entry(sha256_prefix=DIGEST[:8])
    monkeypatch.setattr(zoo, "download_url_to_file", serve)
    served["bytes"] = b"a damaged download"
    with pytest.raises(zoo.ZooError, match="does not match"):
        zoo.resolve("zoo:tiny_x2")
    folder = zoo.hub_file(hub["tiny_x2"]).parent
    assert list(folder.iterdir()) == []  # nothing damaged left behind
    served["bytes"] = CONTENT
    path, digest = zoo.resolve("zoo:tiny_x2")
    assert path.read_bytes() == CONTENT and digest == DIGEST


def test_offline_download_failure_is_one_line_with_the_manual_instruction(hub, monkeypatch):
    def offline(url, dst, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    hub["tiny_x2"] = tiny_entry(sha256=DIGEST)
    monkeypatch.setattr(zoo, "download_url_to_file", offline)
    with pytest.raises(zoo.ZooError) as err:
        zoo.resolve("zoo:tiny_x2")
    message = one_line(err.value)
    target = zoo.hub_file(hub["tiny_x2"])
    assert hub["tiny_x2"].url in message and str(target) in message
    assert "teacher.ckpt=PATH" in message and not target.exists()


def test_a_hub_cache_under_a_file_is_one_line_naming_torch_home(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "a_file" / "hub"))
    monkeypatch.setattr(zoo, "load_registry", lambda text=None: {"tiny_x2": tiny_entry()})
    with pytest.raises(zoo.ZooError) as err:
        zoo.resolve("zoo:tiny_x2", download=fail_download)
    message = one_line(err.value)
    assert "TORCH_HOME" in message and str(tmp_path / "a_file") in message


def test_an_entry_published_only_in_an_archive_says_where_to_put_the_file(hub, monkeypatch):
    hub["tiny_x2"] = tiny_entry(url=None, archive_url="https://example.invalid/all.zip")
    monkeypatch.setattr(zoo, "download_url_to_file", fail_download)
    with pytest.raises(zoo.ZooError) as err:
        zoo.resolve("zoo:tiny_x2")
    message = one_line(err.value)
    assert "all.zip" in message and str(zoo.hub_file(hub["tiny_x2"])) in message


def test_an_unknown_name_lists_the_zoo():
    with pytest.raises(zoo.ZooError, match="edsr_x4"):
        zoo.entry_for("zoo:edsr_x5")


def test_markdown_table_has_one_row_per_entry():
    lines = zoo.markdown_table().splitlines()
    assert len(lines) == 2 + len(zoo.load_registry())
    assert any("`span_ch28_x4`" in line and "SHA-256" in line for line in lines)


@requires_shared("weights", "span_ch28_x4.pth")
@pytest.mark.parametrize("name", list(SHARED_SPAN))
def test_shared_span_files_match_their_entries_and_load_strictly(name):
    item = zoo.load_registry()[name]
    path = shared_path("weights", SHARED_SPAN[name])
    assert zoo.verify(path, item) == item.sha256
    network = build_from_record(item.model, item.model_args, None)
    load_weights(network, path)


@requires_shared("data", "benchmarks", "Set5")
@requires_shared("weights", "span_ch28_x4.pth")
def test_zoo_teacher_from_the_hub_cache_scores_its_set5_psnr(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    item = zoo.load_registry()["span_ch28_x4"]
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(shared_path("weights", "span_ch28_x4.pth"), zoo.hub_file(item))
    cfg = compose_config("train", ["teacher=zoo/span_ch28_x4", "backbone=span", "scale=4"])
    teacher, identity = build_teacher(cfg, needed=True)
    assert identity["sha256"] == item.sha256 and identity["zoo"] == "span_ch28_x4"
    set5 = evaluate_benchmarks(teacher, shared_path("data", "benchmarks"), ["Set5"], 4)["Set5"]
    assert abs(set5["psnr"] - item.set5_psnr) <= 0.05
