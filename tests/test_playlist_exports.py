import json
from datetime import datetime
from xml.etree import ElementTree as ET

import pytest

from deepcuts.io.playlists import XSPF_NS, ExportTrack, PlaylistExport, export

PLAYLIST = PlaylistExport(
    title="Discover Weekly 2026-W48",
    creator="deepcuts",
    date=datetime(2026, 11, 23),
    annotation="30 tracks for u1",
    tracks=[
        ExportTrack(
            "spotify:track:67Hna13dNDkZvBpTXRIaOJ",
            "Teardrop",
            "Massive Attack",
            "Mezzanine",
            330000,
            None,
            "Because you played Glory Box",
        ),
        ExportTrack(
            "t2", "Song & <Dance>", "A", None, None, "audio/t2.wav", "Sounds like Teardrop"
        ),
    ],
)


def test_jspf_as_listenbrainz_reads_it():
    doc = json.loads(export(PLAYLIST, "jspf"))["playlist"]
    assert doc["title"] == PLAYLIST.title and doc["creator"] == "deepcuts"
    assert "https://musicbrainz.org/doc/jspf#playlist" in doc["extension"]
    first, second = doc["track"]
    assert first["identifier"] == ["https://open.spotify.com/track/67Hna13dNDkZvBpTXRIaOJ"]
    assert first["duration"] == 330000 and first["annotation"] == "Because you played Glory Box"
    assert second["location"] == ["audio/t2.wav"] and second["identifier"] == [
        "urn:deepcuts:item:t2"
    ]


def test_xspf_is_valid_xml_in_the_xspf_namespace():
    root = ET.fromstring(export(PLAYLIST, "xspf").encode())
    assert root.tag == f"{{{XSPF_NS}}}playlist" and root.get("version") == "1"
    tracks = root.findall(f"{{{XSPF_NS}}}trackList/{{{XSPF_NS}}}track")
    assert len(tracks) == 2
    assert tracks[1].find(f"{{{XSPF_NS}}}title").text == "Song & <Dance>"
    assert tracks[1].find(f"{{{XSPF_NS}}}location").text == "audio/t2.wav"
    assert tracks[0].find(f"{{{XSPF_NS}}}duration").text == "330000"


def test_m3u8_has_extm3u_and_an_extinf_per_track():
    lines = export(PLAYLIST, "m3u8").splitlines()
    assert lines[0] == "#EXTM3U"
    extinf = [i for i, line in enumerate(lines) if line.startswith("#EXTINF:")]
    assert len(extinf) == 2
    assert lines[extinf[0]] == "#EXTINF:330,Massive Attack - Teardrop"
    assert lines[extinf[0] + 1] == "spotify:track:67Hna13dNDkZvBpTXRIaOJ"
    assert (
        lines[extinf[1]] == "#EXTINF:-1,A - Song & <Dance>"
        and lines[extinf[1] + 1] == "audio/t2.wav"
    )


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="unknown playlist format 'pls'"):
        export(PLAYLIST, "pls")
