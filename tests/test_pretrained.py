"""ImageNet weights: the registry, the torch hub cache, downloads from a real local server, and loading.

Nothing can come from the internet here, so the checkpoint is made the way torchvision's are: medbench's
torch ResNet-18 (1000 classes, BatchNorm statistics randomised so that a tensor left unloaded shows), saved
with ``torch.save`` under ``resnet18-<first 8 hex of its SHA-256>.pth``. The registry entry is pointed at
that name and ``$MEDBENCH_WEIGHTS_MIRROR`` at a server on 127.0.0.1. Framework code runs in one fresh
interpreter per framework, as everywhere in this suite; the pytest process itself stays framework-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from medbench import pretrained
from medbench.data.url_download import part_path
from medbench.errors import ChecksumError, ConfigError, DownloadError
from medbench.finetune import HEAD_PREFIXES
from medbench.frameworks.checkpoints import WeightsError, is_ignored, read_state_dict
from medbench.frameworks.families import resolve_model
from medbench.models import list_models
from medbench.pretrained import download as weights_download
from medbench.pretrained import registry as weights_registry
from tests.data.conftest import FakeServer, Hit, _Handler, _Server

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = {"retries": 0, "timeout": 5.0, "backoff": 0.0, "progress": False}
ENV_VARS = ("TORCH_HOME", "XDG_CACHE_HOME", pretrained.MIRROR_ENV_VAR, "http_proxy", "HTTP_PROXY")

# Builds the stand-in for torchvision's resnet18 checkpoint: argv = output folder; prints the file's path.
MAKE_CHECKPOINT = """
import hashlib, sys, torch
from pathlib import Path
from medbench.frameworks import get_framework
model = get_framework("torch").build_model("resnet18", num_classes=1000, in_channels=3, image_size=224)
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    for name, t in model.state_dict().items():
        if name.endswith(("running_var", "bn1.weight", "bn2.weight", "downsample.1.weight")):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif name.endswith(("running_mean", "bias")):
            t.copy_(0.1 * torch.randn(t.shape, generator=gen))
tmp = Path(sys.argv[1]) / "checkpoint.pth"
torch.save(model.state_dict(), tmp)
final = tmp.with_name("resnet18-" + hashlib.sha256(tmp.read_bytes()).hexdigest()[:8] + ".pth")
tmp.rename(final)
print(final)
"""

# Loads the checkpoint in one framework: argv = framework, checkpoint, output folder.
LOAD = """
import json, sys
import numpy as np
from medbench.frameworks import get_framework
from medbench.config import RuntimeConfig
from medbench.pretrained import load_pretrained
fw = get_framework(sys.argv[1])
fw.configure(RuntimeConfig(threads=1))
checkpoint, out = sys.argv[2], sys.argv[3]

def build(num_classes, **kw):
    args = {"in_channels": 3, "image_size": 64, **kw}
    return fw.build_model("resnet18", num_classes=num_classes, seed=1, **args)

fresh = fw.state_dict(build(9))
model = build(9)
results = {"nine": load_pretrained(fw, model, checkpoint, family="resnet")}
arrays = {"nine/" + k: v for k, v in fw.state_dict(model).items()}
arrays.update({"fresh/" + k: v for k, v in fresh.items() if k.startswith("fc.")})
full = build(1000)
results["full"] = load_pretrained(fw, full, checkpoint, family="resnet")
images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
arrays["logits"] = np.asarray(fw.predict(full, images))
for name, kw in {"small_grey": {"in_channels": 1, "image_size": 28}, "small_rgb": {"image_size": 28}}.items():
    try:
        load_pretrained(fw, build(9, **kw), checkpoint, family="resnet")
        results[name] = None
    except Exception as err:
        results[name] = {"type": type(err).__name__, "message": str(err)}
np.savez(out + "/arrays.npz", **arrays)
open(out + "/results.json", "w").write(json.dumps(results))
"""


def _worker_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _python(code: str, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_worker_env(),
        timeout=timeout,
    )
    assert proc.returncode == 0, f"worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch.save'd ResNet-18 state dict named as torch hub names its files."""
    path = Path(_python(MAKE_CHECKPOINT, str(tmp_path_factory.mktemp("checkpoint"))).strip().splitlines()[-1])
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(pretrained.hash_prefix(path.name))
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A private torch cache; no user mirror or proxy (a proxy would swallow requests to 127.0.0.1)."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def entry(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> pretrained.PretrainedWeights:
    """The registry's resnet18 entry, renamed after the test checkpoint (its hash is what gets checked)."""
    official = pretrained.get_pretrained("resnet18")
    url = f"{pretrained.OFFICIAL_BASE_URL}/{checkpoint.name}"
    patched = dataclasses.replace(official, url=url)
    monkeypatch.setitem(weights_registry._REGISTRY["imagenet"], "resnet18", patched)
    return patched


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[FakeServer]:
    """A real HTTP server on 127.0.0.1 with ``files`` (URL path -> body); 404 for anything else."""
    fake = FakeServer(files)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.fake = fake
    host, port = httpd.server_address[:2]
    fake.base_url = f"http://{host}:{port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """The checkpoint served at ``/<its name>``, set as the weights mirror."""
    with serve({f"/{checkpoint.name}": checkpoint.read_bytes()}) as fake:
        monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, fake.url("/"))
        yield fake


def dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


# ---- the registry --------------------------------------------------------------------------------------------
EXPECTED_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "efficientnetv2_s": "efficientnet_v2_s-dd5fe13b.pth",
    "efficientnetv2_m": "efficientnet_v2_m-dc08266a.pth",
    "efficientnetv2_l": "efficientnet_v2_l-59c71312.pth",
}


def test_registry_has_torchvisions_imagenet1k_v1_files_for_medbenchs_models() -> None:
    assert {m: pretrained.get_pretrained(m).filename for m in pretrained.list_pretrained()} == EXPECTED_FILES
    for model in pretrained.list_pretrained():
        entry = pretrained.get_pretrained(model)
        assert model in list_models()
        assert resolve_model(model, {})[0] in HEAD_PREFIXES
        assert entry.url == f"https://download.pytorch.org/models/{entry.filename}"
        assert entry.sha256_prefix == entry.filename.rsplit("-", 1)[1].removesuffix(".pth")
        assert entry.torchvision.endswith(".IMAGENET1K_V1")
        assert 60 < entry.acc1 < entry.acc5 < 100
        assert entry.crop_size <= entry.resize_size
    assert pretrained.get_pretrained("efficientnetv2_l").mean == (0.5, 0.5, 0.5)
    assert pretrained.get_pretrained("resnet18").mean == pretrained.IMAGENET_MEAN


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("resnet18-f37072fd.pth", "f37072fd"),
        ("mnasnet0.5_top1_67.823-3ffadce67e.pth", "3ffadce67e"),
        ("efficientnet_b1_rwightman-533bc792.pth", "533bc792"),
        ("resnet18-final.pth", None),
        ("my-weights.safetensors", None),
        ("resnet18.pth", None),
    ],
)
def test_hash_prefix_follows_torch_hub(name: str, prefix: str | None) -> None:
    assert pretrained.hash_prefix(name) == prefix


def test_a_model_without_weights_lists_those_with_them() -> None:
    with pytest.raises(ConfigError) as caught:
        pretrained.get_pretrained("simple_cnn")
    assert "simple_cnn" in caught.value.problem
    for model in EXPECTED_FILES:
        assert model in caught.value.fix
    with pytest.raises(ConfigError, match="Did you mean resnet50"):
        pretrained.resolve_pretrained("resnet05")
    with pytest.raises(ConfigError, match="imagenet"):
        pretrained.get_pretrained("resnet18", "imagenet22k")


def test_cache_is_torch_hubs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert pretrained.cache_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_path("resnet50") == tmp_path / "xdg/torch/hub/checkpoints/resnet50-0676ba61.pth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert pretrained.cache_dir() == Path("~/.cache/torch/hub/checkpoints").expanduser()


def test_mirror_replaces_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = pretrained.get_pretrained("efficientnetv2_s")
    assert pretrained.weights_url(entry) == entry.url
    monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, "https://mirror.example/torch/")
    assert pretrained.weights_url(entry) == "https://mirror.example/torch/efficientnet_v2_s-dd5fe13b.pth"
    monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, "mirror.example/torch")
    with pytest.raises(ConfigError, match=pretrained.MIRROR_ENV_VAR):
        pretrained.weights_url(entry)


# ---- download and cache (torch only writes the checkpoint) ---------------------------------------------------
@pytest.mark.torch
def test_download_into_the_cache_then_reuse_without_a_request(
    server: FakeServer, entry: pretrained.PretrainedWeights, checkpoint: Path
) -> None:
    path = pretrained.resolve_pretrained("resnet18", "imagenet", **FAST)
    assert path == pretrained.cache_dir() / checkpoint.name
    assert path.read_bytes() == checkpoint.read_bytes()
    assert not part_path(path).exists()
    assert server.hits == [Hit(f"/{checkpoint.name}", None)]
    assert pretrained.resolve_pretrained("resnet18", **FAST) == path
    assert len(server.hits) == 1  # the verified cached copy was used as it is


@pytest.mark.torch
def test_a_file_torchvision_already_cached_is_used_offline(
    entry: pretrained.PretrainedWeights, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = pretrained.cache_dir() / checkpoint.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, dead_url())  # any request would fail
    assert pretrained.resolve_pretrained("resnet18", **FAST) == cached


@pytest.mark.torch
def test_an_interrupted_download_resumes(
    server: FakeServer, entry: pretrained.PretrainedWeights, checkpoint: Path
) -> None:
    server.plan(f"/{checkpoint.name}", "cut:1000000")
    path = pretrained.download_pretrained("resnet18", **{**FAST, "retries": 1})
    assert [hit.range for hit in server.hits] == [None, "bytes=1000000-"]
    assert path.read_bytes() == checkpoint.read_bytes()


@pytest.mark.torch
def test_corrupted_bytes_are_rejected_and_not_kept(
    server: FakeServer, entry: pretrained.PretrainedWeights, checkpoint: Path
) -> None:
    server.plan(f"/{checkpoint.name}", "wrong")
    dest = pretrained.cache_dir() / checkpoint.name
    with pytest.raises(ChecksumError) as caught:
        pretrained.resolve_pretrained("resnet18", **FAST)
    assert entry.sha256_prefix in caught.value.problem
    assert "--weights PATH" in caught.value.fix
    assert not dest.exists()
    assert not part_path(dest).exists()


@pytest.mark.torch
def test_a_corrupt_cached_copy_is_replaced(
    server: FakeServer,
    entry: pretrained.PretrainedWeights,
    checkpoint: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dest = pretrained.cache_dir() / checkpoint.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(checkpoint.read_bytes()[:-10] + b"0123456789")  # same size, last bytes wrong
    with caplog.at_level(logging.WARNING, logger=weights_download.__name__):
        assert pretrained.resolve_pretrained("resnet18", **FAST) == dest
    assert dest.read_bytes() == checkpoint.read_bytes()
    assert len(server.hits) == 1
    assert "moved it to" in caplog.text
    (aside,) = dest.parent.glob(f"{checkpoint.name}.corrupt-*")  # kept, not deleted
    assert aside.read_bytes().endswith(b"0123456789")


@pytest.mark.torch
def test_offline_error_names_the_url_the_cache_path_and_weights(
    entry: pretrained.PretrainedWeights, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = dead_url()
    monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, mirror)
    with pytest.raises(DownloadError) as caught:
        pretrained.resolve_pretrained("resnet18", **FAST)
    err = caught.value
    assert mirror + entry.filename in err.problem
    assert "refused" in err.problem.lower()
    for expected in (entry.url, str(pretrained.cache_dir() / entry.filename), "--weights PATH", "MIRROR"):
        assert expected in err.fix
    assert not (pretrained.cache_dir() / entry.filename).exists()


@pytest.mark.torch
def test_the_weights_path_wins(
    entry: pretrained.PretrainedWeights, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(pretrained.MIRROR_ENV_VAR, dead_url())
    assert pretrained.resolve_pretrained("resnet18", path=checkpoint, **FAST) == checkpoint
    assert not pretrained.cache_dir().exists()  # nothing downloaded, nothing cached
    mine = tmp_path / "mine.pth"  # any name, any model: the user's weights are taken as they are
    mine.write_bytes(checkpoint.read_bytes())
    assert pretrained.resolve_pretrained("simple_cnn", path=mine) == mine
    with pytest.raises(WeightsError, match="does not exist") as caught:
        pretrained.resolve_pretrained("resnet18", path=tmp_path / "nope.pth")
    assert str(tmp_path / "nope.pth") in caught.value.problem
    fake = tmp_path / checkpoint.name  # named as the published file but not it
    fake.write_bytes(b"not the file")
    with pytest.raises(ChecksumError, match="SHA-256"):
        pretrained.resolve_pretrained("resnet18", path=fake)


@pytest.mark.torch
def test_verify_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    good = pretrained.verify_checkpoint(checkpoint)
    assert good.ok and good.expected_prefix == checkpoint.name[9:17]
    assert good.n_tensors == len(read_state_dict(checkpoint)) > 100
    bad = tmp_path / checkpoint.name
    bad.write_bytes(checkpoint.read_bytes()[:-1] + b"x")
    result = pretrained.verify_checkpoint(bad)
    assert not result.ok and result.n_tensors is None
    assert result.sha256 == hashlib.sha256(bad.read_bytes()).hexdigest()


# ---- the CLI -------------------------------------------------------------------------------------------------
def medbench(*args: str, torch_home: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    environ.update({"TORCH_HOME": str(torch_home), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def test_weights_list_shows_what_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "th" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet18-f37072fd.pth").write_bytes(b"not the real file")
    result = medbench("weights", "list", torch_home=tmp_path / "th")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "●" in rows["resnet18"] and "69.758" in rows["resnet18"]
    assert "·" in rows["resnet50"] and "76.130" in rows["resnet50"]
    verified = medbench("weights", "list", "--verify", torch_home=tmp_path / "th")
    assert "✗" in next(line for line in verified.stdout.splitlines() if line.startswith(" resnet18"))


def test_weights_download_failure_is_one_line_with_the_cache_path(tmp_path: Path) -> None:
    with serve({}) as empty:  # a mirror without the file: a 404, which is not retried
        result = medbench(
            "weights",
            "download",
            "resnet18",
            torch_home=tmp_path / "th",
            **{pretrained.MIRROR_ENV_VAR: empty.url("/")},
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "404" in message
    assert str(tmp_path / "th/hub/checkpoints/resnet18-f37072fd.pth") in message
    assert "--weights PATH" in message
    assert empty.hits == [Hit("/resnet18-f37072fd.pth", None)]
    unknown = medbench("weights", "download", "resnet18", "simple_cnn", torch_home=tmp_path / "th")
    assert unknown.returncode == 2 and "efficientnetv2_l" in unknown.stderr  # checked before any download


@pytest.mark.torch
def test_weights_verify(checkpoint: Path, tmp_path: Path) -> None:
    ok = medbench("weights", "verify", str(checkpoint), torch_home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and hashlib.sha256(checkpoint.read_bytes()).hexdigest() in ok.stdout
    bad = tmp_path / checkpoint.name
    bad.write_bytes(checkpoint.read_bytes()[:-1] + b"x")
    failed = medbench("weights", "verify", str(bad), torch_home=tmp_path)
    assert failed.returncode == 1
    assert "corrupt" in failed.stdout
    both = medbench("weights", "verify", str(checkpoint), str(bad), "--format", "json", torch_home=tmp_path)
    rows = json.loads(both.stdout)  # the "corrupt" note went to stderr
    assert both.returncode == 1 and "corrupt" in both.stderr
    assert [r["status"] == "ok" for r in rows] == [True, False] and rows[0]["tensors"] > 0
    assert rows[1]["status"].startswith("SHA-256 does not start with") and len(rows[1]["sha256"]) == 64


# ---- loading into every framework ----------------------------------------------------------------------------
LOAD_TEST = "test_load_pretrained_backbone_exact_head_fresh"


class Loads:
    """The load workers of every framework this session will test, started together.

    Importing TensorFlow and initialising JAX take most of a worker's time, largely on one core each, so
    running the workers side by side roughly halves the wall-clock time on a small machine.
    """

    def __init__(self, frameworks: list[str], checkpoint: Path, root: Path):
        self.out = {fw: root / fw for fw in frameworks}
        self.procs: dict[str, subprocess.Popen] = {}
        for fw, out in self.out.items():
            out.mkdir()
            with open(out / "log.txt", "w") as log:  # a file, not a pipe: nobody drains pipes while waiting
                self.procs[fw] = subprocess.Popen(
                    [sys.executable, "-c", LOAD, fw, str(checkpoint), str(out)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_worker_env(),
                )

    def result(self, framework: str) -> Path:
        """The worker's output folder once it has finished; fails with its output if it did not succeed."""
        proc, out = self.procs[framework], self.out[framework]
        try:
            proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.returncode == 0, f"{framework} worker failed:\n{(out / 'log.txt').read_text()[-6000:]}"
        return out

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def loads(request: pytest.FixtureRequest, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """Starts a worker for every framework whose load test was selected and not skipped (torch always)."""
    selected = {
        item.callspec.params["framework"]
        for item in request.session.items
        if getattr(item, "originalname", None) == LOAD_TEST and item.get_closest_marker("skip") is None
    }
    workers = Loads(sorted(selected | {"torch"}), checkpoint, tmp_path_factory.mktemp("loads"))
    yield workers
    workers.close()


@pytest.mark.parametrize(
    "framework",
    [
        pytest.param("torch", marks=pytest.mark.torch),
        pytest.param("jax", marks=[pytest.mark.torch, pytest.mark.jax]),
        pytest.param("keras", marks=[pytest.mark.torch, pytest.mark.keras]),
    ],
)
def test_load_pretrained_backbone_exact_head_fresh(framework: str, checkpoint: Path, loads: Loads) -> None:
    out, torch_reference = loads.result(framework), loads.result("torch")
    results = json.loads((out / "results.json").read_text())
    with np.load(out / "arrays.npz") as data:
        arrays = dict(data)
    with np.load(torch_reference / "arrays.npz") as data:
        reference_logits = data["logits"]
    saved = {k: v for k, v in read_state_dict(checkpoint).items() if not is_ignored(k)}
    backbone = {k: v for k, v in saved.items() if not k.startswith("fc.")}

    nine = results["nine"]
    assert nine["skipped_head"] == ["fc.bias", "fc.weight"]
    assert nine["loaded"] == len(backbone)
    assert nine["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    for key, value in backbone.items():
        np.testing.assert_array_equal(arrays[f"nine/{key}"], value, err_msg=key)
    for key in ("fc.weight", "fc.bias"):  # the fresh initialisation, untouched
        np.testing.assert_array_equal(arrays[f"nine/{key}"], arrays[f"fresh/{key}"], err_msg=key)
    assert arrays["nine/fc.weight"].shape == (9, 512)

    full = results["full"]  # 1000 classes: the head fits and is loaded too, and the model computes
    assert (full["skipped_head"], full["loaded"]) == ([], len(saved))
    assert arrays["logits"].shape == (2, 1000)
    scale = float(np.abs(reference_logits).max())
    np.testing.assert_allclose(arrays["logits"], reference_logits, rtol=0, atol=1e-4 * max(scale, 1.0))

    grey = results["small_grey"]
    assert grey["type"] == "WeightsError"
    for needle in ("conv1.weight", "small_input=false", "data.resize_to", "data.to_rgb=true"):
        assert needle in grey["message"], needle
    rgb = results["small_rgb"]
    assert "small_input=false" in rgb["message"] and "to_rgb" not in rgb["message"]
