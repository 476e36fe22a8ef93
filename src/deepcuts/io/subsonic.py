"""A client for music servers that speak the Subsonic API (Navidrome, Gonic, Airsonic, Supysonic,
Jellyfin's Subsonic plugins): read the library, write playlists.

Plain HTTP (httpx) with JSON answers (``f=json``). Every field the API calls optional is read as
optional: servers differ in what they send (Supysonic's ``createPlaylist`` answers with no
playlist at all, most servers send no MusicBrainz ids, OpenSubsonic servers add ``genres`` and
``musicBrainzId``), so a missing field is never an error.

Authentication: the token scheme of API 1.13 (``t`` = md5(password + salt), ``s`` = salt)
where the server has it, else the password hex-encoded (``p=enc:...``) as older servers and
Supysonic want. The client tries the token first and falls back once, on the server's answer.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

API_VERSION = "1.13.0"  # what we ask for; servers answer with their own
CLIENT_NAME = "deepcuts"
PAGE = 500  # albums per getAlbumList2 page (the API's maximum)

# Subsonic error codes (http://www.subsonic.org/pages/api.jsp#error codes)
MISSING_PARAMETER = 10
WRONG_CREDENTIALS = 40
TOKEN_NOT_SUPPORTED = 41  # "Token authentication not supported for LDAP users"
NOT_AUTHORISED = 50
NOT_FOUND = 70


class SubsonicError(Exception):
    """The server answered a request with an error; ``code`` is the Subsonic error code."""

    def __init__(self, server: str, method: str, code: int | None, message: str):
        self.server, self.method, self.code, self.message = server, method, code, message
        where = f"{server} ({method})"
        super().__init__(
            f"{where}: {message}" + (f" [Subsonic error {code}]" if code is not None else "")
        )


class SubsonicAuthError(SubsonicError):
    """The server refused the user name and password."""


class SubsonicUnreachable(Exception):
    """Nothing answered at the server's address, or what answered is not a Subsonic server."""


@dataclass(frozen=True)
class Song:
    """A song as the server describes it. Only ``id`` and ``title`` are always there."""

    id: str
    title: str
    artist: str | None = None
    artist_id: str | None = None
    album: str | None = None
    album_id: str | None = None
    duration_s: int | None = None
    genre: str | None = None
    year: int | None = None
    track: int | None = None
    path: str | None = None  # relative to the server's music folder, where the server says
    mbid: str | None = None  # MusicBrainz recording id (OpenSubsonic ``musicBrainzId``)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Song:
        genre = raw.get("genre")
        if not genre and isinstance(raw.get("genres"), list) and raw["genres"]:
            first = raw["genres"][0]
            genre = first.get("name") if isinstance(first, dict) else None
        return cls(
            id=str(raw["id"]),
            title=str(raw.get("title") or ""),
            artist=_text(raw.get("artist")),
            artist_id=_text(raw.get("artistId")),
            album=_text(raw.get("album")),
            album_id=_text(raw.get("albumId")),
            duration_s=_int(raw.get("duration")),
            genre=_text(genre),
            year=_int(raw.get("year")),
            track=_int(raw.get("track")),
            path=_text(raw.get("path")),
            mbid=_text(raw.get("musicBrainzId")),
        )


@dataclass(frozen=True)
class Playlist:
    id: str
    name: str
    owner: str | None
    song_count: int | None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def server_key(url: str) -> str:
    """A short stable name for a server: host, port and path of its URL (no scheme, no user)."""
    parts = urlsplit(url.strip())
    key = (parts.hostname or "") + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
    return key.lower()


class SubsonicClient:
    """One user's session with one server.

    Parameters
    ----------
    url : the server's base URL (``http://host:4533``); ``/rest/<method>`` is appended.
    user, password : the account the playlists are written for.
    timeout : seconds per request.

    Example
    -------
    >>> with SubsonicClient("http://127.0.0.1:4533", "alice", "pw") as client:  # doctest: +SKIP
    ...     client.ping()
    ...     songs = list(client.songs())
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url must be an http:// or https:// address, not {url!r}")
        self.url = url.strip().rstrip("/")
        self.name = server_key(url)
        self.user = user
        self._password = password
        self._token_auth = True
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=True)

    def __enter__(self) -> SubsonicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests -------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        if self._token_auth:
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode()).hexdigest()  # the API's scheme
            return {"u": self.user, "t": token, "s": salt}
        return {"u": self.user, "p": "enc:" + self._password.encode().hex()}

    def call(
        self, method: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The ``subsonic-response`` object of one API call; raises on an error answer."""
        answer = self._request(method, params)
        error = answer.get("error") or {}
        if (
            answer.get("status") != "ok"
            and self._token_auth
            and error.get("code")
            in (
                MISSING_PARAMETER,
                TOKEN_NOT_SUPPORTED,
            )
        ):
            # A server without token authentication (API before 1.13, Supysonic) asks for `p`.
            log.debug(
                "%s does not take token authentication: sending the password instead", self.name
            )
            self._token_auth = False
            answer = self._request(method, params)
            error = answer.get("error") or {}
        if answer.get("status") != "ok":
            code = _int(error.get("code"))
            message = str(
                error.get("message") or "the server answered with an error and no message"
            )
            if code == WRONG_CREDENTIALS:
                raise SubsonicAuthError(
                    self.url,
                    method,
                    code,
                    f"the server refused user {self.user!r} and its password ({message})",
                )
            raise SubsonicError(self.url, method, code, message)
        return answer

    def _request(self, method: str, params) -> dict[str, Any]:
        query: list[tuple[str, Any]] = list(self._auth().items())
        query += [("v", API_VERSION), ("c", CLIENT_NAME), ("f", "json")]
        if isinstance(params, dict):
            query += list(params.items())
        elif params:
            query += list(params)
        url = f"{self.url}/rest/{method}"
        try:
            # POST with a form body: a playlist of many songs does not fit in a URL, and the
            # password stays out of the server's access log.
            form: dict[str, list[str]] = {}
            for key, value in query:
                form.setdefault(key, []).append(str(value))
            response = self._http.post(url, data=form)
        except httpx.TransportError as exc:
            raise SubsonicUnreachable(
                f"cannot reach the Subsonic server at {self.url}: {exc}"
            ) from exc
        try:
            body = response.json()
            answer = body["subsonic-response"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SubsonicUnreachable(
                f"{self.url} answered {method} with HTTP {response.status_code} and no Subsonic response: "
                "is this the server's base URL (the part before /rest/)?"
            ) from exc
        if not isinstance(answer, dict):
            raise SubsonicUnreachable(
                f"{self.url} answered {method} with a malformed Subsonic response"
            )
        return answer

    # -- the API --------------------------------------------------------------------------
    def ping(self) -> str:
        """Check the address and the credentials; returns the server's API version."""
        return str(self.call("ping").get("version", "?"))

    def albums(self) -> Iterator[dict[str, Any]]:
        """Every album (ID3 tags), page by page."""
        offset = 0
        while True:
            page = self.call(
                "getAlbumList2", {"type": "alphabeticalByName", "size": PAGE, "offset": offset}
            )
            albums = (page.get("albumList2") or {}).get("album") or []
            yield from albums
            if len(albums) < PAGE:
                return
            offset += PAGE

    def album_songs(self, album_id: str) -> list[Song]:
        album = self.call("getAlbum", {"id": album_id}).get("album") or {}
        return [Song.from_api(s) for s in album.get("song") or [] if s.get("id") is not None]

    def songs(self, progress: Callable[[int, int], None] | None = None) -> Iterator[Song]:
        """Every song of the library, album by album (each song once); `progress(done, total)`
        is called after each album."""
        seen: set[str] = set()
        albums = [str(a["id"]) for a in self.albums() if a.get("id") is not None]
        for done, album_id in enumerate(albums, 1):
            for song in self.album_songs(album_id):
                if song.id not in seen:
                    seen.add(song.id)
                    yield song
            if progress is not None:
                progress(done, len(albums))

    def playlists(self) -> list[Playlist]:
        found = (self.call("getPlaylists").get("playlists") or {}).get("playlist") or []
        return [
            Playlist(
                str(p["id"]),
                str(p.get("name") or ""),
                _text(p.get("owner")),
                _int(p.get("songCount")),
            )
            for p in found
            if p.get("id") is not None
        ]

    def playlist_songs(self, playlist_id: str) -> list[str]:
        entries = (self.call("getPlaylist", {"id": playlist_id}).get("playlist") or {}).get(
            "entry"
        ) or []
        return [str(e["id"]) for e in entries if e.get("id") is not None]

    def write_playlist(
        self,
        name: str,
        song_ids: list[str],
        *,
        comment: str | None = None,
        playlist_id: str | None = None,
    ) -> str:
        """Make the user's playlist called `name` hold exactly `song_ids`, in order; returns its id.

        The playlist written last time (`playlist_id`), or else the playlist of that name this
        user owns, is replaced (``createPlaylist`` with its ``playlistId``), so a weekly list
        stays one playlist; one is created where none exists. The known id is tried first
        without listing the playlists: a server may fail to list a playlist that holds a song
        deleted since (Supysonic answers 500), and replacing its songs mends it. Servers differ
        in what ``createPlaylist`` answers (Supysonic: nothing), so the playlist is found again
        by name where the answer does not carry it."""
        songs = [("songId", s) for s in song_ids]
        if playlist_id is not None:
            try:
                self.call("createPlaylist", [("playlistId", playlist_id), *songs])
                self._comment(playlist_id, comment)
                return playlist_id
            except SubsonicError as exc:
                if exc.code != NOT_FOUND or any(p.id == playlist_id for p in self.playlists()):
                    raise  # a song is missing, not the playlist
                log.info("%s: playlist %s is gone; writing %r anew", self.name, playlist_id, name)
        mine = [
            p
            for p in self.playlists()
            if p.name == name and (p.owner is None or p.owner == self.user)
        ]
        if len(mine) > 1:
            log.warning(
                "%s: user %s has %d playlists named %r; replacing the first (%s)",
                self.name,
                self.user,
                len(mine),
                name,
                mine[0].id,
            )
        if mine:
            playlist_id = mine[0].id
            self.call("createPlaylist", [("playlistId", playlist_id), *songs])
        else:
            answer = self.call("createPlaylist", [("name", name), *songs])
            made = answer.get("playlist") or {}
            playlist_id = _text(made.get("id"))
            if playlist_id is None:
                again = [
                    p
                    for p in self.playlists()
                    if p.name == name and (p.owner is None or p.owner == self.user)
                ]
                if not again:
                    raise SubsonicError(
                        self.url, "createPlaylist", None, f"playlist {name!r} was not created"
                    )
                playlist_id = again[0].id
        self._comment(playlist_id, comment)
        return playlist_id

    def delete_playlist(self, playlist_id: str) -> None:
        """Delete a playlist; one already gone is not an error."""
        try:
            self.call("deletePlaylist", {"id": playlist_id})
        except SubsonicError as exc:
            if exc.code != NOT_FOUND:
                raise

    def _comment(self, playlist_id: str, comment: str | None) -> None:
        if not comment:
            return
        try:
            self.call("updatePlaylist", {"playlistId": playlist_id, "comment": comment})
        except SubsonicError as exc:  # a comment is a nicety: a server may not keep one
            log.info("%s: the playlist's comment was not set: %s", self.name, exc)
