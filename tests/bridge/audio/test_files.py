import errno
import os
import re

import numpy as np
import pytest
import soundfile

import bridge.audio.files as audio_io
from bridge.audio.files import read_audio, write_wav_atomic
from bridge.errors import BadRequest, DiskFull, IoError, NotFound

TOLERANCE = {16: 2.0**-14, 24: 2.0**-22, 32: 0.0}


def noise(channels: int, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.99, 0.99, (channels, frames)).astype(np.float32)


def leftovers(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".partial"))


@pytest.mark.parametrize("shape", [(1, 1), (1, 1000), (2, 4800), (2, 48000)])
@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("bit_depth", [16, 24, 32])
def test_round_trip(tmp_path, shape, sample_rate, bit_depth):
    audio = noise(*shape)
    path = tmp_path / "out.wav"
    write_wav_atomic(path, audio, sample_rate, bit_depth=bit_depth)
    read, rate = read_audio(path)
    assert rate == sample_rate
    assert read.shape == shape and read.dtype == np.float32
    assert np.abs(read - audio).max() <= TOLERANCE[bit_depth]
    info = soundfile.info(str(path))
    assert info.format == "WAV" and info.subtype == audio_io.WAV_SUBTYPES[bit_depth]
    assert leftovers(tmp_path) == []


def test_clips_to_full_scale(tmp_path):
    audio = np.array([[2.0, -3.0, 0.5]], dtype=np.float32)
    write_wav_atomic(tmp_path / "loud.wav", audio, 48000, bit_depth=32)
    read, _ = read_audio(tmp_path / "loud.wav")
    assert np.allclose(read, [[1.0, -1.0, 0.5]], rtol=1e-6)


def test_overwrites_existing_file(tmp_path):
    path = tmp_path / "out.wav"
    write_wav_atomic(path, noise(2, 100, seed=1), 48000)
    write_wav_atomic(path, noise(2, 200, seed=2), 48000)
    assert read_audio(path)[0].shape == (2, 200)


def test_missing_parent_directory_is_created(tmp_path):
    path = tmp_path / "job-1" / "mix.wav"
    write_wav_atomic(path, noise(2, 100), 48000)
    assert read_audio(path)[0].shape == (2, 100)


def test_unwritable_location_is_io_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(IoError, match="cannot write"):
        write_wav_atomic(blocker / "out.wav", noise(2, 100), 48000)
    with pytest.raises(IoError, match="cannot write"):
        write_wav_atomic(blocker / "sub" / "out.wav", noise(2, 100), 48000)
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


@pytest.mark.parametrize("bit_depth", [8, 20, 64, True, "24"])
def test_bad_bit_depth_touches_nothing(tmp_path, bit_depth):
    with pytest.raises(BadRequest, match="bit_depth"):
        write_wav_atomic(tmp_path / "out.wav", noise(2, 100), 48000, bit_depth=bit_depth)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "audio", [np.zeros(100, np.float32), np.zeros((0, 10), np.float32), np.full((1, 4), np.nan, np.float32)]
)
def test_bad_audio_touches_nothing(tmp_path, audio):
    with pytest.raises(BadRequest):
        write_wav_atomic(tmp_path / "out.wav", audio, 48000)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error, kind, words", [
    (errno.ENOSPC, DiskFull, "is full"), (errno.EDQUOT, DiskFull, "over its quota"),
    (errno.EIO, IoError, "input/output error"), (errno.EROFS, IoError, "read-only filesystem"),
])
def test_failure_mid_write_leaves_no_partial_and_keeps_old_file(tmp_path, monkeypatch, error, kind, words):
    path = tmp_path / "out.wav"
    write_wav_atomic(path, noise(2, 100), 48000)
    before = path.read_bytes()
    real_write = os.write
    calls = []

    def broken_write(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(error, os.strerror(error))  # some bytes went out, then the disk said no
        return real_write(fd, bytes(data)[:1000])

    monkeypatch.setattr(audio_io.os, "write", broken_write)
    with pytest.raises(kind, match=words) as info:
        write_wav_atomic(path, noise(2, 48000), 48000)
    assert info.value.code == ("disk_full" if kind is DiskFull else "io_error")
    assert "out.wav" in info.value.message
    assert leftovers(tmp_path) == []
    assert path.read_bytes() == before


def test_a_full_disk_is_reported_even_where_libsndfile_would_hide_it(tmp_path, monkeypatch):
    """The control for encoding in memory: libsndfile writing to a file turns ENOSPC into a bare failure
    (its write callback cannot raise), so the errno must come from our own os.write."""
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio_io.os, "write", full)
    with pytest.raises(DiskFull):
        write_wav_atomic(tmp_path / "out.wav", noise(2, 4800), 48000)
    assert os.listdir(tmp_path) == []


def test_failed_rename_leaves_no_partial(tmp_path, monkeypatch):
    def broken_replace(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio_io.os, "replace", broken_replace)
    with pytest.raises(IoError, match="Permission denied"):
        write_wav_atomic(tmp_path / "out.wav", noise(2, 100), 48000)
    assert os.listdir(tmp_path) == []


def test_final_name_appears_only_complete(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    audio = noise(2, 96000)
    seen = []
    real_replace, real_fsync = os.replace, os.fsync
    fsynced = set()

    def spying_fsync(fd):
        fsynced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    def spying_replace(source, target):
        # Just before the rename: the final name does not exist yet, and the
        # partial is complete, readable and already on disk.
        assert os.fspath(target) == os.fspath(path) and not path.exists()
        assert re.fullmatch(r"\.out\.wav\.[0-9a-f]{8}\.partial", os.path.basename(source))
        data, _ = soundfile.read(source, dtype="float32", always_2d=True)
        assert data.shape == (96000, 2)
        assert os.stat(source).st_ino in fsynced
        seen.append(source)
        real_replace(source, target)

    monkeypatch.setattr(audio_io.os, "replace", spying_replace)
    monkeypatch.setattr(audio_io.os, "fsync", spying_fsync)
    write_wav_atomic(path, audio, 48000)
    assert len(seen) == 1
    assert os.stat(tmp_path).st_ino in fsynced  # the directory entry was synced too
    assert leftovers(tmp_path) == []


# --- reading ---------------------------------------------------------------


def test_read_missing_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no such audio file"):
        read_audio(tmp_path / "missing.wav")


def test_read_directory_is_bad_request(tmp_path):
    with pytest.raises(BadRequest, match="not a file"):
        read_audio(tmp_path)


def test_read_text_is_bad_request_with_reason(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples")
    with pytest.raises(BadRequest) as info:
        read_audio(path)
    assert "cannot read audio" in info.value.message and str(path) in info.value.message
    assert info.value.code == "bad_request"


def test_read_empty_audio_is_bad_request(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros((0, 2), np.float32), 48000)
    with pytest.raises(BadRequest, match="no frames"):
        read_audio(path)


@pytest.mark.parametrize("fmt, suffix", [("FLAC", "flac"), ("WAV", "wav"), ("OGG", "ogg")])
def test_reads_other_formats_channels_first(tmp_path, fmt, suffix):
    path = tmp_path / f"in.{suffix}"
    audio = (0.5 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    soundfile.write(str(path), np.stack([audio, -audio], axis=1), 32000, format=fmt)
    read, rate = read_audio(path)
    assert rate == 32000 and read.shape == (2, 8000) and read.flags.c_contiguous
    if fmt != "OGG":
        assert np.allclose(read[1], -audio, atol=2e-4)


@pytest.mark.parametrize("title, name, bars, bpm, key, expected", [
    ("warm-lofi-piano", "mix", 8.0, 92.0, "", "warm-lofi-piano_8bars_92bpm.wav"),
    ("dark-techno", "drums", 4.0, 120.0, "C minor", "dark-techno_drums_4bars_120bpm_Cmin.wav"),
    ("pad", "variation-2", 1.5, 133.333, "f# major", "pad_v2_1.5bars_133.33bpm_F#maj.wav"),
    ("x", "mix-tail", 0.3333333, 97.5, "Bbm", "x_tail_0.33bars_97.5bpm_Bbmin.wav"),
    ("", "bass", 2.0, 60.0, "Eb", "take_bass_2bars_60bpm_Eb.wav"),
    ("ambient-pad-rain-stor", "variation-12", 0.3333, 133.333, "Bb minor",
     "ambient-pad_v12_0.33bars_133.33bpm_Bbmin.wav"),
])
def test_daw_file_names_are_musical_and_fit_a_clip_lane(title, name, bars, bpm, key, expected):
    """The prompt's words, the stem, bars, BPM and key (when known), at most 40 characters before .wav (a DAW's
    clip lane), the words shortened at a word's end; the old names were <job id>_<name>_..., 60+ characters with
    none of the prompt's words."""
    assert audio_io.daw_file_name(title, name, bars=bars, bpm=bpm, key=key) == expected
    assert len(expected) - len(".wav") <= audio_io.DAW_NAME_CHARS


@pytest.mark.parametrize("prompt, source, title", [
    ("Warm lo-fi piano, 92 BPM", "", "warm-lofi-piano"),
    ("Ambient pad with the rain", "", "ambient-pad-rain"),
    ("Café del Mar sunset groove, very long", "", "cafe-del-mar-sunset"),  # at most 20 characters, whole words
    ("", "/inbox/my clip-0a1b2c3d4e.wav", "my-clip"),  # the source clip, less the inbox copy's hash
    ("", "/renders/j/dark-techno_8bars_120bpm.wav", "dark-techno"),  # another render's DAW name: its words
    ("", "", ""),
])
def test_musical_titles_come_from_the_prompt_or_the_source_clip(prompt, source, title):
    assert audio_io.musical_title(prompt, source) == title


def test_a_second_name_is_a_hard_link_or_a_copy_where_links_fail(tmp_path, monkeypatch):
    source = tmp_path / "mix.wav"
    write_wav_atomic(source, np.zeros((1, 100), np.float32), 48000)
    assert audio_io.link_or_copy_atomic(source, tmp_path / "a.wav") == "link"
    assert os.path.samefile(source, tmp_path / "a.wav")
    assert audio_io.link_or_copy_atomic(source, tmp_path / "a.wav") == "link"  # again: replaces, no error

    def no_links(*_args):
        raise OSError(1, "Operation not permitted")  # what exFAT answers

    monkeypatch.setattr(audio_io.os, "link", no_links)
    assert audio_io.link_or_copy_atomic(source, tmp_path / "b.wav") == "copy"
    assert not os.path.samefile(source, tmp_path / "b.wav")
    assert (tmp_path / "b.wav").read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob(".*.partial"))
