"""Shared fixtures: word images drawn with Pillow, gt.txt folders, LMDBs, and the test plugin."""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import random
import runpy
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from PIL import Image, ImageDraw, ImageFont

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CONFIG = REPO / "configs" / "crnn_vgg_bilstm_ctc.py"
PLUGIN_TEMPLATE = REPO / "examples" / "plugin-template"  # a third-party plugin package
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# The suite runs in pytest-xdist workers (`-n auto` in pyproject.toml), one per core: each worker
# (and the processes its tests start) gets its share of the cores, so that torch's threads do not
# contend for them: on two cores the suite took 450 s instead of 1173 (docs/benchmarks.md).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, _CORES // _WORKERS))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 4 (each holds torch and a model or two, ~1 GB; the
    longest tests bound the suite's time beyond that). PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(_CORES, 4))

# tests/fake_plugins/*.py are imported by entry points as ``fake_plugins.<name>``.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# A model's first forward pass is slow (lazy initialisation), which hypothesis' deadline would flag.
settings.register_profile("ocrframe", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ocrframe")


@pytest.fixture(scope="session", autouse=True)
def inference_cache(tmp_path_factory):
    """ONNX files and timed inference paths go to a cache of the test session's own, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("OCRFRAME_CACHE", str(tmp_path_factory.mktemp("ocrframe-cache")))
    yield
    patch.undo()


def _font(size: int = 24):
    if FONT.is_file():
        return ImageFont.truetype(str(FONT), size)
    return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable default font


def render_word(text: str, height: int = 32, size: int = 24) -> Image.Image:
    """Black text on white, RGB, ``height`` pixels high and as wide as the word plus a margin."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (max(right - left + 8, 8), height), "white")
    ImageDraw.Draw(image).text((4 - left, (height - (bottom - top)) // 2 - top), text, font=font, fill="black")
    return image


def random_words(count: int, seed: int = 0, letters: str = "abcdefghijklmnopqrstuvwxyz") -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 5))) for _ in range(count)]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, the textbook dynamic programme (a reference for the metrics)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def write_word_folder(root: Path, words: list[str], lexicons: dict[int, list[str]] | None = None) -> Path:
    """A folder of PNG word images with a gt.txt (``path<TAB>label[<TAB>lexicon]``)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, word in enumerate(words):
        name = f"img_{i:03d}.png"
        render_word(word).save(root / name)
        line = f"{name}\t{word}"
        if lexicons and i in lexicons:
            line += "\t" + " ".join(lexicons[i])
        lines.append(line)
    (root / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def load_tool(name: str):
    """tools/NAME.py as a module of this process (a fresh interpreter would spend seconds importing torch)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name: str, *args) -> int:
    """tools/NAME.py's command line run in this process, its ``__main__`` block included (how it
    reports errors, its exit status), as ``python tools/NAME.py ARGS`` would: the exit status."""
    path = REPO / "tools" / f"{name}.py"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(path), *map(str, args)])
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exit:
            return 0 if exit.code is None else exit.code
    return 0


def create_lmdb(argv: list[str]) -> int:
    """Run tools/create_lmdb.py's main in this process."""
    return load_tool("create_lmdb").main(argv)


def make_lmdb(folder: Path, out: Path) -> Path:
    """Build an LMDB from a gt.txt folder with tools/create_lmdb.py."""
    assert create_lmdb([str(folder), str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def train_lmdb(tmp_path_factory) -> Path:
    """64 images of 2-5 letter words."""
    base = tmp_path_factory.mktemp("train_data")
    return make_lmdb(write_word_folder(base / "folder", random_words(64, seed=1)), base / "lmdb")


@pytest.fixture(scope="session")
def val_lmdb(tmp_path_factory) -> Path:
    """16 images of 2-5 letter words."""
    base = tmp_path_factory.mktemp("val_data")
    return make_lmdb(write_word_folder(base / "folder", random_words(16, seed=2)), base / "lmdb")


# --cfg-options for a training run of a few iterations on the tiny LMDBs below
TINY_RUN = [
    "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2", "default_hooks.logger.interval=1",
    "train_dataloader.batch_size=8", "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
    "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
]


def save_checkpoint(model, cfg, path: Path) -> Path:
    """A checkpoint as the runner writes one: the weights and the config they were trained with (as data)."""
    import torch

    from ocrframe.checkpoint import store_config

    torch.save(dict(meta=store_config({}, cfg), state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """The paper CRNN, randomly initialised (seed 0), saved as a checkpoint of the paper config."""
    import torch
    from mmengine.config import Config

    from ocrframe.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    torch.manual_seed(0)
    return save_checkpoint(MODELS.build(cfg.model), cfg, tmp_path_factory.mktemp("checkpoint") / "crnn.pth")


@pytest.fixture
def tinyconv():
    """The plugin template's components (TinyConv, ConfidenceDecoder) registered in the
    process-wide slots for one test, as its plugin hook registers them, and removed afterwards."""
    from ocrframe.plugins import load_plugins
    from ocrframe.registry import SLOTS, Origin, registering_as

    load_plugins()
    sys.path.insert(0, str(PLUGIN_TEMPLATE))
    try:
        from ocrframe_tinyconv import plugin
    finally:
        sys.path.remove(str(PLUGIN_TEMPLATE))
    origin = Origin("tinyconv", "ocrframe-tinyconv (source tree)", "-")
    with registering_as(origin):
        plugin.ocrframe_register(SLOTS)
    yield SLOTS.backbone.get("TinyConv")
    SLOTS.unregister(origin)


# -- a model that reads ---------------------------------------------------------------------------

READING_ALPHABET = "adeilmnoprst"  # the letters the reading model was trained on
READING_WORDS = ["open", "sesame", "mile", "street", "lemon", "tide", "planet", "ram"]  # all of them


def train_reading_model(iterations: int = 300, batch_size: int = 16, seed: int = 0):
    """A small recognizer (SmallResNet backbone, no recurrence, the paper's charset) trained to read
    strings of 1-6 letters of READING_ALPHABET drawn by ``render_word`` at three font sizes: Adam
    at 1e-2, ten times lower for the last fifth, and on at the lower rate, 50 iterations at a time
    (at most 10 times), until it reads every word of READING_WORDS, which tests compare readings
    with: a CPU's kernels change the rounding and so the trained weights (on an AVX-512 host the
    300 iterations read "open" as "ope"). About 20 s of one core; it then reads such words
    (checked by the fixture below). Returns (model in eval mode, its config)."""
    import torch
    from mmengine.config import Config

    from ocrframe.data.transforms import Compose, pad_collate
    from ocrframe.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    cfg.model = dict(cfg.model, backbone=dict(type="SmallResNet", channels=(16, 32, 32, 32)),
                     sequence_encoder=dict(type="Identity"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is as fast, and shares the machine
    try:
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model).train()
        pipeline = Compose(cfg.test_pipeline)  # train on what reading sees: aspect ratio kept
        rng = random.Random(seed)
        pool = []
        for _ in range(2000):
            word = "".join(rng.choice(READING_ALPHABET) for _ in range(rng.randint(1, 6)))
            pool.append(pipeline(dict(image=render_word(word, size=rng.choice([22, 24, 26])), text=word, key=word)))
        optimizer = torch.optim.Adam(model.parameters(), 1e-2)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [iterations * 4 // 5], 0.1)
        reading = [pipeline(dict(image=render_word(word), text=word, key=word)) for word in READING_WORDS]

        def reads_them_all() -> bool:
            model.eval()
            with torch.no_grad():
                texts = [model(sample["image"][None], mode="predict")[0]["pred"] for sample in reading]
            model.train()
            return texts == READING_WORDS

        for step in range(iterations + 10 * 50):
            if step >= iterations and (step - iterations) % 50 == 0 and reads_them_all():
                break
            batch = pad_collate(rng.sample(pool, batch_size))
            loss = model(batch["inputs"], batch["data_samples"], mode="loss")["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), cfg


@pytest.fixture(scope="session")
def reading_checkpoint(request, tmp_path_factory) -> Path:
    """A checkpoint of ``train_reading_model`` (stored config included), trained once and kept in
    pytest's cache directory, keyed by the training code and the torch version. Its config is next
    to it (``reading_config``). The fixture checks that the model reads words it never saw."""
    import torch

    from ocrframe.inference import Reader

    recipe = inspect.getsource(train_reading_model) + inspect.getsource(render_word) + torch.__version__
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("ocrframe-reading-model") if cache is not None else tmp_path_factory.mktemp("reading")
    path = folder / f"reader-{key}.pth"
    if not path.is_file():  # parallel test workers may both train it: each writes its own files, then renames
        model, cfg = train_reading_model()
        config, weights = (path.with_name(f"{path.stem}.{os.getpid()}.tmp{suffix}") for suffix in (".py", ".pth"))
        cfg.dump(str(config))
        save_checkpoint(model, cfg, weights)
        config.replace(path.with_suffix(".py"))
        weights.replace(path)
    unseen = random_words(40, seed=99, letters=READING_ALPHABET)
    reader = Reader.from_checkpoint(path, precision="fp32", runtime="torch")
    readings = reader.read([render_word(w) for w in unseen])
    correct = sum(p.text == w for p, w in zip(readings, unseen))
    assert correct >= 36, f"the reading model read {correct} of 40 unseen words: {path} is not trained"
    texts = [p.text for p in reader.read([render_word(w) for w in READING_WORDS])]
    assert texts == READING_WORDS, f"the reading model reads {texts}, not {READING_WORDS}: {path}"
    return path


@pytest.fixture(scope="session")
def reading_config(reading_checkpoint) -> Path:
    """The config file of ``reading_checkpoint``."""
    return reading_checkpoint.with_suffix(".py")
