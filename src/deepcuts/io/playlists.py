"""Playlist exporters: JSPF (as ListenBrainz reads it), XSPF and M3U8.

A playlist to export is a `PlaylistExport`: a title, a creator, a date, and tracks with a
title, an artist, an album, a duration, a location (a file path or URI, if known), an id and
the reason it is there. Each format keeps what it can hold: JSPF and XSPF carry the reason as
the track's annotation, M3U8 as a comment line.

A track's location (`track_location`): its audio file's path where the catalogue has one,
else the ``track_url`` setting's pattern filled with its id, else its catalogue URI
(``spotify:track:...``), else its public page (MusicBrainz), else ``urn:deepcuts:item:<id>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

XSPF_NS = "http://xspf.org/ns/0/"
JSPF_EXTENSION = "https://musicbrainz.org/doc/jspf#playlist"
JSPF_TRACK_EXTENSION = "https://musicbrainz.org/doc/jspf#track"
FORMATS = ("json", "jspf", "xspf", "m3u8")


@dataclass(frozen=True)
class ExportTrack:
    item_id: str
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_ms: int | None = None
    location: str | None = None  # a file path or a URI (spotify:track:..., https://...)
    reason: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class PlaylistExport:
    title: str
    creator: str
    date: datetime
    annotation: str = ""
    identifier: str | None = None
    tracks: list[ExportTrack] = field(default_factory=list)


def _identifiers(track: ExportTrack) -> list[str]:
    """Track identifiers as URIs (JSPF and XSPF want URIs, not bare ids)."""
    if track.item_id.startswith("mbid:recording:"):
        return [
            "https://musicbrainz.org/recording/" + track.item_id.removeprefix("mbid:recording:")
        ]
    if track.item_id.startswith("spotify:track:"):
        return ["https://open.spotify.com/track/" + track.item_id.removeprefix("spotify:track:")]
    return [f"urn:deepcuts:item:{track.item_id}"]


def track_location(
    item_id: str, path: str | None = None, uri: str | None = None, url_pattern: str = ""
) -> str:
    """Where a player finds a track: `path` (the catalogue's audio file) if given, else
    `url_pattern` with ``{item_id}`` (URL-quoted) and ``{key}`` (the id's part after its last
    colon) filled in, else `uri`, else a ``spotify:track:`` id itself, else the id's public
    page or URN (`_identifiers`).

    >>> track_location("t000123", url_pattern="https://music.example.org/play/{item_id}")
    'https://music.example.org/play/t000123'
    >>> track_location("t000123", path="audio/t000123.wav", url_pattern="https://x/{key}")
    'audio/t000123.wav'
    """
    if path:
        return path
    if url_pattern:
        key = item_id.rsplit(":", 1)[-1]
        return url_pattern.format(item_id=quote(item_id, safe=":"), key=quote(key, safe=""))
    if uri:
        return uri
    if item_id.startswith("spotify:track:"):  # the id is the URI players open
        return item_id
    return _identifiers(ExportTrack(item_id))[0]


def to_jspf(playlist: PlaylistExport) -> str:
    """JSPF, with the MusicBrainz playlist extension ListenBrainz uses."""
    return json.dumps({"playlist": jspf_dict(playlist)}, indent=2, ensure_ascii=False)


def jspf_dict(playlist: PlaylistExport) -> dict[str, object]:
    """The JSPF ``playlist`` object of `to_jspf`, as a dict."""
    tracks = []
    for t in playlist.tracks:
        entry: dict[str, object] = {"identifier": _identifiers(t)}
        for key, value in (("title", t.title), ("creator", t.artist), ("album", t.album)):
            if value:
                entry[key] = value
        if t.duration_ms:
            entry["duration"] = int(t.duration_ms)
        if t.location:
            entry["location"] = [t.location]
        if t.reason:
            entry["annotation"] = t.reason
        entry["extension"] = {
            JSPF_TRACK_EXTENSION: {"additional_metadata": {"deepcuts_item_id": t.item_id}}
        }
        tracks.append(entry)
    body: dict[str, object] = {
        "title": playlist.title,
        "creator": playlist.creator,
        "date": playlist.date.isoformat(),
        "annotation": playlist.annotation,
        "extension": {JSPF_EXTENSION: {"creator": playlist.creator, "public": False}},
        "track": tracks,
    }
    if playlist.identifier:
        body["identifier"] = playlist.identifier
    return body


def to_xspf(playlist: PlaylistExport) -> str:
    """XSPF version 1, in the XSPF namespace."""
    ET.register_namespace("", XSPF_NS)

    def sub(parent: ET.Element, tag: str, text: object | None) -> None:
        if text is not None and text != "":
            ET.SubElement(parent, f"{{{XSPF_NS}}}{tag}").text = str(text)

    root = ET.Element(f"{{{XSPF_NS}}}playlist", {"version": "1"})
    sub(root, "title", playlist.title)
    sub(root, "creator", playlist.creator)
    sub(root, "annotation", playlist.annotation)
    sub(root, "date", playlist.date.isoformat())
    track_list = ET.SubElement(root, f"{{{XSPF_NS}}}trackList")
    for t in playlist.tracks:
        track = ET.SubElement(track_list, f"{{{XSPF_NS}}}track")
        sub(track, "location", t.location)
        for identifier in _identifiers(t):
            sub(track, "identifier", identifier)
        sub(track, "title", t.title)
        sub(track, "creator", t.artist)
        sub(track, "annotation", t.reason)
        sub(track, "album", t.album)
        sub(track, "duration", int(t.duration_ms) if t.duration_ms else None)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_m3u8(playlist: PlaylistExport) -> str:
    """Extended M3U in UTF-8: #EXTM3U, then #EXTINF and a path or URI per track."""
    lines = ["#EXTM3U", f"#PLAYLIST:{playlist.title}"]
    for t in playlist.tracks:
        seconds = round(t.duration_ms / 1000) if t.duration_ms else -1
        label = " - ".join(x for x in (t.artist, t.title) if x) or t.item_id
        if t.reason:
            lines.append(f"# {t.reason}")
        lines.append(f"#EXTINF:{seconds},{label}")
        lines.append(t.location or track_location(t.item_id))
    return "\n".join(lines) + "\n"


def to_json(playlist: PlaylistExport) -> str:
    """deepcuts' own JSON: everything the playlist has, scores included."""
    return json.dumps(
        {
            "title": playlist.title,
            "creator": playlist.creator,
            "date": playlist.date.isoformat(),
            "annotation": playlist.annotation,
            "identifier": playlist.identifier,
            "tracks": [t.__dict__ for t in playlist.tracks],
        },
        indent=2,
        ensure_ascii=False,
    )


def export(playlist: PlaylistExport, fmt: str) -> str:
    writers = {"json": to_json, "jspf": to_jspf, "xspf": to_xspf, "m3u8": to_m3u8}
    if fmt not in writers:
        raise ValueError(f"unknown playlist format {fmt!r}; one of {', '.join(FORMATS)}")
    return writers[fmt](playlist)
