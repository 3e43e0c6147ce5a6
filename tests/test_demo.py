"""The demo dataset: layout, naming, quirks, problems and determinism."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usseg import demo
from usseg.demo import DEFAULT_CLASSES, ORGANS, SIZES, generate_demo_dataset, plan

AUS_PATTERN = re.compile(r"^(ct\d+)-\d+$")
RUS_PATTERN = re.compile(r"^([a-z]+)\d+$")
PALETTE = np.array([c["rgb"] for c in DEFAULT_CLASSES], dtype=np.int32)
NAMES = [c["name"] for c in DEFAULT_CLASSES]
REAL_ORGANS = {"background", "liver", "kidney", "gallbladder", "spleen", "vessels"}


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def _hashes(root: Path) -> dict[str, str]:
    return {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in _files(root).items()}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def _distances(rgb: np.ndarray, palette: np.ndarray = PALETTE) -> np.ndarray:
    """Squared RGB distance of every pixel to every palette colour, (H, W, n_classes)."""
    return ((rgb[:, :, None, :] - palette[None, None]) ** 2).sum(-1)


def _decode(rgb: np.ndarray, palette: np.ndarray = PALETTE) -> np.ndarray:
    """Nearest palette index (ties to the lower index, as the workflow decodes)."""
    return _distances(rgb, palette).argmin(-1)


def _pairs(root: Path, modality: str, split: str):
    """(image, mask) paths of every annotated image."""
    ext = ".png" if modality == "AUS" else ".jpg"
    for mask in sorted((root / modality / "annotations" / split).glob("*.png")):
        image = root / modality / "images" / split / f"{mask.stem}{ext}"
        if image.exists():
            yield image, mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_tiny")
    summary = generate_demo_dataset(out, size="tiny", seed=0)
    return out / "abdominal_US", summary


def test_tiny_layout_and_counts(tiny):
    root, summary = tiny
    spec = SIZES["tiny"]
    assert sorted(p.name for p in root.iterdir()) == ["AUS", "RUS"]
    counts = {
        "AUS/images/train": sum(spec.aus_train),
        "AUS/annotations/train": sum(spec.aus_train),
        "AUS/images/test": sum(spec.aus_test),
        "AUS/annotations/test": sum(spec.aus_test),
        "RUS/images/train": sum(spec.rus_train),
        "RUS/images/test": sum(spec.rus_test_labeled.values())
        + sum(spec.rus_test_unlabeled.values()),
        "RUS/annotations/test": sum(spec.rus_test_labeled.values()) + 1,
    }
    assert counts == {
        "AUS/images/train": 15,
        "AUS/annotations/train": 15,
        "AUS/images/test": 4,
        "AUS/annotations/test": 4,
        "RUS/images/train": 4,
        "RUS/images/test": 9,
        "RUS/annotations/test": 9,
    }
    folders = {str(p.relative_to(root)) for p in root.glob("*/*/*") if p.is_dir()}
    assert folders == set(counts), "RUS has no annotations/train folder; nothing else exists"
    for folder, n in counts.items():
        suffix = ".jpg" if folder == "RUS/images/train" or folder == "RUS/images/test" else ".png"
        files = list((root / folder).iterdir())
        assert len(files) == n, folder
        assert all(f.suffix == suffix for f in files), folder
    # Nothing but the dataset below the root: the manifest must account for every file.
    assert len(_files(root)) == sum(counts.values())
    assert summary["n_images"] == 15 + 4 + 4 + 9 and summary["n_masks"] == 15 + 4 + 9
    assert summary["counts"]["RUS"] == {"images/train": 4, "images/test": 9, "annotations/test": 9}
    assert summary["image_size"] == {"width": 64, "height": 64}


@pytest.mark.parametrize("size", ["full", "small", "tiny"])
def test_planned_counts_and_subjects(size):
    tasks = plan(size)
    images = Counter((t.modality, t.split) for t in tasks if t.image)
    masks = Counter((t.modality, t.split) for t in tasks if t.mask)
    subjects = {
        (m, s): {t.subject for t in tasks if (t.modality, t.split) == (m, s) and t.image}
        for m, s in images
    }
    labeled = Counter(t.subject for t in tasks if t.modality == "RUS" and t.mask and t.image)
    orphans = [t for t in tasks if t.mask and not t.image]
    if size == "full":
        assert images == {
            ("AUS", "train"): 633,
            ("AUS", "test"): 293,
            ("RUS", "train"): 404,
            ("RUS", "test"): 213,
        }
        assert masks == {("AUS", "train"): 633, ("AUS", "test"): 293, ("RUS", "test"): 61}
    if size != "tiny":
        assert [
            len(subjects[k])
            for k in [("AUS", "train"), ("AUS", "test"), ("RUS", "train"), ("RUS", "test")]
        ] == [9, 4, 7, 4]
        assert labeled == {"h": 26, "a": 16, "g": 10, "b": 8}
        # Every real test subject also has frames without annotation.
        assert all(
            sum(1 for t in tasks if t.subject == s and t.image) > n for s, n in labeled.items()
        )
    else:
        assert (
            len(subjects[("AUS", "train")]) >= 3
        )  # a subject-grouped train/val split stays possible
        assert labeled == {"h": 3, "a": 2, "g": 2, "b": 1}
    assert subjects[("RUS", "test")] == {"a", "b", "g", "h"}
    assert not subjects[("RUS", "train")] & subjects[("RUS", "test")]
    assert not subjects[("AUS", "train")] & subjects[("AUS", "test")]
    assert len(orphans) == 1 and orphans[0].modality == "RUS" and orphans[0].split == "test"


def test_small_size_is_small():
    spec = SIZES["small"]
    assert spec.width <= 200 and spec.height <= 200
    assert all(12 <= n <= 20 for n in spec.aus_train) and all(n <= 12 for n in spec.aus_test)
    assert all(n <= 8 for n in spec.rus_train)
    full = SIZES["full"]
    assert (full.width, full.height) == (450, 460)


def test_names_match_subject_patterns(tiny):
    root, _ = tiny
    for path in (root / "AUS").rglob("*.png"):
        assert AUS_PATTERN.match(path.stem), path
    subjects = {"train": set(), "test": set()}
    for path in (root / "RUS").rglob("*.*"):
        m = RUS_PATTERN.match(path.stem)
        assert m, path
        if path.parent.parent.name == "images":
            subjects[path.parent.name].add(m.group(1))
    assert subjects["test"] == {"a", "b", "g", "h"}
    assert subjects["train"] and not subjects["train"] & subjects["test"]


def test_masks_pair_with_images_and_one_orphan(tiny):
    root, _ = tiny
    for split in ("train", "test"):
        images = {p.stem for p in (root / "AUS" / "images" / split).iterdir()}
        masks = {p.stem for p in (root / "AUS" / "annotations" / split).iterdir()}
        assert images == masks
    images = {p.stem for p in (root / "RUS" / "images" / "test").iterdir()}
    masks = {p.stem for p in (root / "RUS" / "annotations" / "test").iterdir()}
    orphans = masks - images
    assert len(orphans) == 1
    assert len(images & masks) == 8
    assert images - masks, "real test subjects also have unlabeled frames"


def test_mask_sizes_equal_image_sizes_and_organs_lie_in_the_fan(tiny):
    root, _ = tiny
    for modality, split in (("AUS", "train"), ("AUS", "test"), ("RUS", "test")):
        for image_path, mask_path in _pairs(root, modality, split):
            image, mask = Image.open(image_path), Image.open(mask_path)
            assert image.size == mask.size == (64, 64)
            organ = _decode(_rgb(mask_path)) > 0
            outside = _grey(image_path) == 0  # black: outside the field of view
            if modality == "AUS":
                assert not (organ & outside).any(), mask_path
            else:  # JPEG may darken a stray pixel at the fan's edge
                assert (organ & outside).sum() <= 0.005 * organ.size, mask_path


def test_same_seed_gives_identical_bytes_with_any_number_of_workers(tiny, tmp_path):
    root, _ = tiny
    generate_demo_dataset(tmp_path, size="tiny", seed=0, workers=2)
    assert _hashes(tmp_path / "abdominal_US") == _hashes(root)


def test_rerun_replaces_previous_content(tmp_path):
    stale = tmp_path / "abdominal_US" / "AUS" / "images" / "train" / "ct99-1.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    keep = tmp_path / "notes.txt"
    keep.write_text("not ours")
    generate_demo_dataset(tmp_path, size="tiny", seed=3)
    assert not stale.exists() and keep.exists()


def test_different_seed_gives_different_data(tiny, tmp_path):
    root, _ = tiny
    generate_demo_dataset(tmp_path, size="tiny", seed=1)
    a, b = _hashes(root), _hashes(tmp_path / "abdominal_US")
    assert a.keys() == b.keys()  # same layout and names
    assert sum(a[k] != b[k] for k in a) >= 0.9 * len(a)


def test_palette_is_looked_up_by_name(tiny, tmp_path):
    root, _ = tiny
    colours = {
        "background": [0, 0, 0],
        "liver": [200, 120, 40],
        "bone": [250, 250, 250],
        "gallbladder": [0, 160, 0],
        "kidney": [240, 240, 0],
        "pancreas": [0, 0, 200],
        "vessels": [200, 0, 0],
        "spleen": [130, 60, 230],
        "adrenal": [0, 200, 200],
    }
    classes = [{"name": n, "rgb": colours[n]} for n in reversed(ORGANS)]
    generate_demo_dataset(tmp_path, size="tiny", seed=0, classes=classes)
    other = tmp_path / "abdominal_US"
    palette = np.array([c["rgb"] for c in classes], dtype=np.int32)
    names = [c["name"] for c in classes]
    for modality, split in (("AUS", "train"), ("RUS", "test")):
        for image_path, mask_path in _pairs(root, modality, split):
            rel = mask_path.relative_to(root)
            # Images do not depend on the palette.
            assert (other / image_path.relative_to(root)).read_bytes() == image_path.read_bytes()
            ours = np.array(NAMES)[_decode(_rgb(mask_path))]
            theirs = np.array(names)[_decode(_rgb(other / rel), palette)]
            assert (ours == theirs).mean() > 0.995, rel
    with pytest.raises(ValueError, match="adrenal"):
        generate_demo_dataset(
            tmp_path, size="tiny", classes=[c for c in classes if c["name"] != "adrenal"]
        )
    with pytest.raises(ValueError, match="huge"):
        generate_demo_dataset(tmp_path, size="huge")


def test_real_masks_label_five_organs_with_anti_aliased_borders(tiny):
    root, _ = tiny
    masks = sorted((root / "RUS" / "annotations" / "test").glob("*.png"))
    seen = set()
    for path in masks:
        rgb = _rgb(path)
        d2 = _distances(rgb)
        classes = {NAMES[i] for i in np.unique(d2.argmin(-1))}
        assert classes <= REAL_ORGANS, path
        seen |= classes
        # Border pixels are blends: not exactly any palette colour (the tint aside) ...
        exact = d2.min(-1) == 0
        tint = (rgb == demo.TINT_RGB).all(-1)
        assert (~exact & ~tint).sum() > 0, f"{path.name}: no anti-aliased pixels"
        # ... yet close enough to decode: the workflow quarantines masks with more than
        # 1 % of pixels farther than 60 from every colour.
        assert (np.sqrt(d2.min(-1)) > 60).mean() < 0.01, path
    assert {"liver", "kidney"} <= seen


def test_simulator_masks_are_crisp_and_may_hold_all_organs(tiny):
    root, _ = tiny
    seen = set()
    for path in sorted((root / "AUS" / "annotations").rglob("*.png")):
        rgb = _rgb(path)
        d2 = _distances(rgb)
        strip = (rgb == demo.PADDING_GREY).all(-1)
        assert ((d2.min(-1) == 0) | strip).all(), path
        seen |= {NAMES[i] for i in np.unique(d2.argmin(-1))}
    assert seen - REAL_ORGANS, "simulator masks label organs the real ones never do"


def test_mask_file_modes_and_tint(tiny):
    root, _ = tiny
    modes = Counter()
    tinted = []
    for path in sorted(root.rglob("annotations/*/*.png")):
        img = Image.open(path)
        modes[img.mode] += 1
        if img.mode == "P":
            assert len(np.asarray(img).shape) == 2  # one channel
            colours = {tuple(c) for c in _rgb(path).reshape(-1, 3)}
            assert colours <= {tuple(c) for c in PALETTE} | {(10, 10, 10)}
        if img.mode == "RGBA":
            assert np.asarray(img).shape[-1] == 4
        # A tinted background, not the odd blended border pixel of the same colour.
        if (_rgb(path) == demo.TINT_RGB).all(-1).mean() > 0.2:
            tinted.append(path)
    assert modes["P"] > 0 and modes["RGBA"] > 0 and modes["RGB"] > modes["P"] + modes["RGBA"]
    assert len(tinted) == 1 and tinted[0].parts[-4] == "RUS"
    # The tint covers the background and still decodes to it.
    labels, tint = _decode(_rgb(tinted[0])), (_rgb(tinted[0]) == demo.TINT_RGB).all(-1)
    assert (labels[tint] == 0).all()


def test_simulator_frames_have_the_padding_strip(tiny):
    root, _ = tiny
    rows = demo._strip_rows(64)
    for image_path, mask_path in _pairs(root, "AUS", "train"):
        assert (_grey(image_path)[-rows:] == demo.PADDING_GREY).all()
        assert (_grey(image_path)[-rows - 1] != demo.PADDING_GREY).any()
        strip = _rgb(mask_path)[-rows:]
        assert (strip == demo.PADDING_GREY).all()
        assert (_decode(strip) == 0).all()  # (10,10,10) is background
    for path in (root / "RUS" / "images").rglob("*.jpg"):
        assert (
            np.abs(_grey(path)[-rows:] - demo.PADDING_GREY) <= 2
        ).mean() < 0.5  # no strip in real frames


def _fan_and_texture(path: Path):
    img = _grey(path)
    fan = img > 12
    fan[-demo._strip_rows(img.shape[0]) :] = False
    inner = fan[1:-1, 1:-1] & fan[:-2, 1:-1] & fan[2:, 1:-1] & fan[1:-1, :-2] & fan[1:-1, 2:]
    lap = np.abs(
        4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    )
    return img[fan].mean(), lap[inner].mean() / max(img[fan].mean(), 1)


def test_domain_gap_darker_cleaner_simulator(tiny):
    root, _ = tiny
    aus = [_fan_and_texture(p) for p in sorted((root / "AUS" / "images").rglob("*.png"))]
    rus = [_fan_and_texture(p) for p in sorted((root / "RUS" / "images").rglob("*.jpg"))]
    aus_mean, aus_tex = np.mean(aus, axis=0)
    rus_mean, rus_tex = np.mean(rus, axis=0)
    assert aus_mean + 25 < rus_mean  # simulator intensities cluster near dark values
    assert rus_tex > 1.5 * aus_tex  # speckle: relative high-frequency energy
    # Every single frame is on its domain's side.
    assert max(m for m, _ in aus) < min(m for m, _ in rus)


def test_labels_match_the_image(tiny):
    """Liver is brighter than the surrounding tissue and vessels darker, in both domains:
    the masks sit where the anatomy is drawn."""
    root, _ = tiny
    for modality, split in (("AUS", "train"), ("RUS", "test")):
        checked = 0
        for image_path, mask_path in _pairs(root, modality, split):
            img, labels = _grey(image_path), _decode(_rgb(mask_path))
            liver, bg = labels == NAMES.index("liver"), (labels == 0) & (img > 12)
            if liver.mean() < 0.05 or bg.sum() < 50:
                continue
            assert img[liver].mean() > img[bg].mean() + 5, image_path
            checked += 1
        assert checked >= 3, modality


def test_liver_is_large_and_small_organs_are_rare_in_the_small_size():
    """Organ statistics of every simulator frame of the small size (labels only, no drawing)."""
    tasks = [t for t in plan("small") if t.modality == "AUS"]
    frames = Counter()
    liver_share = []
    for task in tasks:
        labels = demo.frame_labels(task, "small", seed=0)
        for code in np.unique(labels):
            frames[ORGANS[code]] += 1
        liver_share.append((labels == demo.LIVER).mean())
    n = len(tasks)
    assert frames["liver"] >= 0.8 * n
    assert np.median(liver_share) > 0.15
    assert 0 < frames["adrenal"] < 0.2 * n
    assert 0 < frames["pancreas"] < 0.5 * n
    assert 0 < frames["gallbladder"] < 0.5 * n
    assert frames["spleen"] > 0 and frames["bone"] > 0
