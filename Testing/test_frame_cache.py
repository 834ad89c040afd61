"""The persistent frame cache: safe names from hostile UIDs, atomic writes that survive kill -9,
corrupt entries dropped, LRU eviction under the cap, thread safety, and no credential on disk
after a real authenticated fetch."""
from __future__ import annotations

import base64
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ProgressiveDicomFetchLib.cache import FrameCache, FrameKey, default_cache_dir
from ProgressiveDicomFetchLib.cache.entry import MAGIC, encode_entry
from ProgressiveDicomFetchLib.files.atomic import STALE_TEMP_S
from ProgressiveDicomFetchLib.dicomweb.frames import FrameData
from ProgressiveDicomFetchLib.dicomweb.server import DicomwebServer
from ProgressiveDicomFetchLib.retrieve import fetcher_for, load_series

SERVER = "http://127.0.0.1:8042/dicom-web"
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
SYNTAX = "1.2.840.10008.1.2.1"


def key(n: int, sop: str = "1.2.3.4", server: str = SERVER) -> FrameKey:
    return FrameKey(server, STUDY, SERIES, sop, n, SYNTAX)


def frame(n: int, size: int = 1000) -> FrameData:
    data = np.random.default_rng(n).integers(0, 256, size, dtype=np.uint8).tobytes()
    return FrameData(n, data, SYNTAX, "application/octet-stream")


def entry_files(root: Path):
    return sorted(root.rglob("*.frame"))


HOSTILE = ["../../etc", "1.2/3", "1.2\\3", "1" * 200, "1.2.é", "", "1.2\x00", "1..2", ".", "/abs/path",
           "1.2.3 ", "1.2.3\n../x", "%2e%2e%2f"]


@pytest.mark.compat
@pytest.mark.parametrize("uid", HOSTILE)
@pytest.mark.parametrize("field", ["study_uid", "series_uid", "sop_instance_uid"])
def test_hostile_uids_are_rejected_with_a_clear_error(uid, field):
    fields = dict(server=SERVER, study_uid=STUDY, series_uid=SERIES, sop_instance_uid="1.2.3", frame_number=1)
    fields[field] = uid
    with pytest.raises(ValueError, match="is not a UID"):
        FrameKey(**fields)


@pytest.mark.compat
def test_any_uid_is_rejected_or_hashed_inside_the_root(tmp_path):
    """Seeded fuzzing: strings built from path, control, non-ASCII and UID characters."""
    rng = random.Random(8)
    alphabet = "0123456789" * 4 + "....//\\\x00\n :%~é日" + "abc"
    cache = FrameCache(tmp_path, max_bytes=10 ** 6)
    accepted = 0
    for _ in range(2000):
        pool = alphabet if rng.random() < 0.7 else "0123456789."
        sop = "".join(rng.choice(pool) for _ in range(rng.randint(0, 140)))
        try:
            k = FrameKey(SERVER, STUDY, SERIES, sop, rng.randint(1, 10 ** 6))
        except ValueError:
            assert not re.fullmatch(r"[0-9]+(\.[0-9]+)*", sop) or len(sop) > 128
            continue
        accepted += 1
        path = cache.path(k)
        assert path.resolve().parent.parent == (tmp_path / "v1").resolve()
        assert len(path.stem) == 64 and set(path.stem) <= set("0123456789abcdef")
    assert accepted > 100
    for number in (0, -1, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            FrameKey(SERVER, STUDY, SERIES, "1.2.3", number)


@pytest.mark.compat
def test_round_trip_names_are_hashes_and_credentials_never_enter_a_key(tmp_path):
    cache = FrameCache(tmp_path / "c", max_bytes=10 ** 6)
    secret = FrameKey("http://alice:pa55word@127.0.0.1:8042/dicom-web/", STUDY, SERIES, "1.2.3.4", 1, SYNTAX)
    assert secret == key(1) and secret.server == SERVER  # redacted, trailing slash dropped
    assert cache.get(key(1)) is None and cache.stats.misses == 1
    assert cache.put(secret, frame(1))
    got = cache.get(key(1))
    assert got == frame(1) and cache.stats.hits == 1 and cache.stats.hit_bytes == 1000
    assert cache.get(key(2)) is None and cache.get(key(1, server="http://other:8042/dicom-web")) is None
    [path] = entry_files(tmp_path / "c")
    assert "1.2.3.4" not in str(path) and b"pa55word" not in path.read_bytes() and b"alice" not in path.read_bytes()
    assert cache.keys() == [key(1)] and cache.entry_size(key(1)) == 1000
    assert oct((tmp_path / "c").stat().st_mode & 0o777) == oct(0o700 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def corrupt(path: Path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[:-10])
    elif how == "flipped":
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    elif how == "magic":
        path.write_bytes(b"X" + blob[1:])
    elif how == "header":
        path.write_bytes(MAGIC + b"\xff\xff\xff\xff" + blob[len(MAGIC) + 4:])
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.compat
@pytest.mark.parametrize("how", ["truncated", "flipped", "magic", "header", "empty", "other key"])
def test_a_corrupt_entry_is_a_miss_and_is_removed(tmp_path, how):
    cache = FrameCache(tmp_path, max_bytes=10 ** 6)
    cache.put(key(1), frame(1))
    cache.put(key(2), frame(2))
    if how == "other key":  # a file renamed onto another key's name: it names its own key inside
        os.replace(str(cache.path(key(2))), str(cache.path(key(1))))
    else:
        corrupt(cache.path(key(1)), how)
    assert cache.get(key(1)) is None
    assert not cache.path(key(1)).exists() and cache.stats.corrupt == 1
    assert cache.put(key(1), frame(1)) and cache.get(key(1)) == frame(1)


@pytest.mark.compat
def test_least_recently_used_frames_go_first_also_after_a_restart(tmp_path):
    size = len(encode_entry(key(1), frame(1)))  # every entry here has this size: the cap holds three
    cache = FrameCache(tmp_path, max_bytes=3 * size)
    for n in (1, 2, 3):
        cache.put(key(n), frame(n))
    assert cache.get(key(1)) is not None  # 1 is now the most recent: 2 is the oldest
    cache.put(key(4), frame(4))
    assert {k.frame_number for k in cache.keys()} == {1, 3, 4} and cache.stats.evictions == 1
    assert cache.total_bytes == sum(p.stat().st_size for p in entry_files(tmp_path)) <= 3 * size
    for age, n in enumerate((4, 1, 3)):  # recency as a new process sees it: file mtimes
        os.utime(str(cache.path(key(n))), (1000 + age, 1000 + age))
    reopened = FrameCache(tmp_path, max_bytes=2 * size)
    assert {k.frame_number for k in reopened.keys()} == {1, 3} and reopened.stats.evictions == 1
    assert not FrameCache(tmp_path, max_bytes=100).put(key(9), frame(9))  # larger than the whole cap


@pytest.mark.compat
def test_threads_share_one_cache_without_losing_or_mixing_frames(tmp_path):
    cache = FrameCache(tmp_path, max_bytes=40 * 1300)  # forces evictions while others read
    errors = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                n = rng.randint(1, 80)
                if rng.random() < 0.5:
                    cache.put(key(n), frame(n))
                else:
                    got = cache.get(key(n))
                    assert got is None or got == frame(n)
        except Exception as error:  # collected: an assert in a thread would vanish
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    on_disk = sum(p.stat().st_size for p in entry_files(tmp_path))
    assert cache.total_bytes == on_disk <= 40 * 1300 and cache.stats.evictions > 0 and cache.stats.corrupt == 0
    assert not list(tmp_path.rglob("*.tmp"))


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from ProgressiveDicomFetchLib.cache import FrameCache, FrameKey
    from ProgressiveDicomFetchLib.dicomweb.frames import FrameData
    cache = FrameCache(sys.argv[1], max_bytes=10 ** 9)
    n = 0
    while True:
        n += 1
        data = np.full(2_000_000, n % 251, dtype=np.uint8).tobytes()
        cache.put(FrameKey("http://h/dicom-web", "1.2", "1.3", "1.4", n), FrameData(n, data, None, "x"))
        print(n, flush=True)
""")


@pytest.mark.compat
def test_kill_9_during_writes_leaves_whole_entries_and_the_next_open_removes_the_temp(tmp_path):
    root = tmp_path / "c"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # a few entries written, then killed in the middle of others
            writer.stdout.readline()
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(10)
    # What a kill mid-write leaves, made certain (the kill itself lands between writes most times):
    # a fresh temp file in atomic_write's naming, owned by the killed writer's (dead) PID.
    dead_temp = root / "v1" / f".{'d' * 64}.frame.{writer.pid}.0bad.tmp"
    dead_temp.write_bytes(b"half a frame")
    live_temp = root / "v1" / f".x.frame.{os.getpid()}.abcd.tmp"  # a writer still running: kept
    live_temp.write_bytes(b"partial")
    assert time.time() - dead_temp.stat().st_mtime < STALE_TEMP_S  # removed for its PID, not its age
    cache = FrameCache(root, max_bytes=10 ** 9)
    assert not dead_temp.exists(), "the dead writer's temp file was left behind"
    assert live_temp.exists() and [p for p in root.rglob("*.tmp") if p != live_temp] == []
    keys = cache.keys()
    assert len(keys) == len(entry_files(root)) >= 5  # every file on disk is a whole, verified entry
    for k in keys:
        got = cache.get(k)
        assert got is not None and got.data == bytes([k.frame_number % 251]) * 2_000_000


@pytest.mark.compat
def test_default_location_honours_xdg_cache_home(tmp_path):
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path), "HOME": "/home/u"}) == \
        tmp_path / "ProgressiveDicomFetch" / "frames"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative/dir", "HOME": "/home/u"}) == \
        Path("/home/u/.cache/ProgressiveDicomFetch/frames")
    with pytest.raises(ValueError, match="not a folder"):
        FrameCache(Path(__file__))
    with pytest.raises(ValueError, match="positive"):
        FrameCache(tmp_path, max_bytes=0)


def test_a_cached_frame_that_no_longer_decodes_is_fetched_again(orthanc, sample_small, tmp_path):
    info = sample_small.series("ct_thick")
    server = DicomwebServer(orthanc.dicomweb_url)
    cache = FrameCache(tmp_path, max_bytes=10 ** 8)
    load = load_series(server, info.study_uid, info.series_uid, cache=cache)[0]
    assert cache.stats.stores == info.num_slices and cache.stats.hits == 0
    task = load.tasks()[3]
    k = fetcher_for(server, load).key(task)
    cache.put(k, FrameData(task.frame_number, b"\x00" * 10, SYNTAX, "application/octet-stream"))  # valid entry, bad pixels
    again = load_series(server, info.study_uid, info.series_uid, cache=cache)[0]
    np.testing.assert_array_equal(again.volume.array, sample_small.load_truth("ct_thick"))
    assert cache.stats.hits == info.num_slices and cache.stats.stores == info.num_slices + 2  # bad one, its refetch
    assert cache.entry_size(k) == info.rows * info.columns * 2


def run_fetch(*args):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", *args],
                          capture_output=True, text=True, timeout=180)


def assert_no_secret_in(root: Path, secrets) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        blob = path.read_bytes()
        for secret in secrets:
            assert secret not in blob and secret not in str(path).encode(), (secret, path)


def test_no_credential_reaches_the_cache_after_an_authenticated_fetch(orthanc_auth, sample_small, tmp_path):
    user, password = orthanc_auth.auth
    info = sample_small.series("ct_thick")
    host = orthanc_auth.dicomweb_url.split("://", 1)[1]
    url = f"http://{user}:{password}@{host}"
    result = run_fetch("--url", url, "--study", info.study_uid, "--series", info.series_uid,
                       "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
                       "--header", "X-Api-Key: k3y-Secret-77")
    assert result.returncode == 0, result.stderr
    assert f"{info.num_slices} stored" in result.stdout
    basic = base64.b64encode(f"{user}:{password}".encode())
    assert_no_secret_in(tmp_path / "cache", [password.encode(), basic, b"k3y-Secret-77", f"{user}:".encode()])
    assert password not in result.stdout + result.stderr
    second = run_fetch("--url", orthanc_auth.dicomweb_url, "--user", user, "--password", password,
                       "--study", info.study_uid, "--series", info.series_uid, "--out", str(tmp_path / "out2"),
                       "--cache", str(tmp_path / "cache"))
    assert second.returncode == 0 and f"{info.num_slices} frames" in second.stdout  # same key without userinfo
