"""The fixed vocabulary of the simulated world: genres, their words and sound, and regions.

Everything random in the world is drawn from these tables, so a genre's tags, descriptions,
playlist titles and audio all point the same way: a text or audio model that learns genre from
them is learning something true of the world.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sound:
    """How a genre sounds: the ranges the synthesizer draws a track's voice from.

    ``brightness`` is the exponent p of the harmonic amplitudes k**-p (small p: bright, buzzy;
    large p: close to a sine). ``decay_s`` is how fast each beat's accent dies away and
    ``sustain`` the level it decays to; ``percussion`` is the loudness of the drum hit on each
    beat, ``offbeat`` shifts the drum by half a beat (reggae's skank). ``drive`` > 1 adds
    distortion.
    """

    bpm: tuple[float, float]
    brightness: float
    octave: int  # MIDI note of the register's lowest C
    scale: tuple[int, ...]
    keys: tuple[int, ...]  # preferred pitch classes of the root, 0 = C
    decay_s: float
    sustain: float
    percussion: float
    beats_per_note: float
    offbeat: bool = False
    drive: float = 1.0
    noise: float = 0.003


@dataclass(frozen=True)
class Genre:
    """A genre and its vocabulary. Each word list has the same length in every genre (text
    generation draws one index for all rows), and ``tags`` starts with the genre's name."""

    name: str
    weight: float  # how common the genre is among artists and listeners, before region
    related: tuple[str, ...]  # genres its taste vector leans towards and stray tags come from
    tags: tuple[str, ...]  # editorial tag words, most typical first
    descriptors: tuple[str, ...]
    instruments: tuple[str, ...]
    moods: tuple[str, ...]  # for playlist titles and descriptions
    words: tuple[str, ...]  # what a listener calls the genre in a playlist title
    sound: Sound


MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)
MAJOR_PENTA = (0, 2, 4, 7, 9)
MINOR_PENTA = (0, 3, 5, 7, 10)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split(", "))


# fmt: off
GENRES: tuple[Genre, ...] = (
    Genre(
        "rock", 1.3, ("metal", "folk", "pop"),
        tags=_words("rock, guitar, indie, alternative, classic rock, garage, riffs, live, anthem, "
                    "grunge, 90s, british, stadium, power chords"),
        descriptors=_words("driving, raw, anthemic, gritty, loud, swaggering"),
        instruments=_words("electric guitar, drums, bass guitar, hammond organ, tambourine"),
        moods=_words("loud, restless, wild, sunny, rebellious, nostalgic"),
        words=_words("rock, guitar, indie, riffs"),
        sound=Sound(bpm=(110, 140), brightness=1.0, octave=48, scale=MINOR_PENTA, keys=(4, 9, 7, 2),
                    decay_s=0.18, sustain=0.45, percussion=0.45, beats_per_note=1.0, drive=2.5,
                    noise=0.01),
    ),
    Genre(
        "electronic", 1.1, ("ambient", "pop"),
        tags=_words("electronic, house, techno, synth, dance, club, edm, deep house, beats, electro, "
                    "dj, four on the floor, berlin, rave"),
        descriptors=_words("pulsing, hypnotic, shimmering, relentless, glossy, minimal"),
        instruments=_words("synthesizer, drum machine, sampler, arpeggiator, vocoder"),
        moods=_words("euphoric, late night, neon, sweaty, weightless, dark"),
        words=_words("techno, house, electronic, dance"),
        sound=Sound(bpm=(120, 132), brightness=0.9, octave=48, scale=MINOR, keys=(9, 5, 0, 7),
                    decay_s=0.12, sustain=0.3, percussion=0.8, beats_per_note=0.5),
    ),
    Genre(
        "hip hop", 1.3, ("soul", "pop"),
        tags=_words("hip hop, rap, beats, boom bap, trap, flow, bars, underground, east coast, "
                    "west coast, samples, freestyle, 808, lyrical"),
        descriptors=_words("hard-hitting, laid-back, bouncing, gritty, smooth, braggadocious"),
        instruments=_words("808 drums, sampler, turntables, bass, vocal chops"),
        moods=_words("hype, chill, moody, confident, street, late night"),
        words=_words("rap, hip hop, beats, bangers"),
        sound=Sound(bpm=(84, 98), brightness=1.5, octave=36, scale=MINOR, keys=(1, 6, 8, 10),
                    decay_s=0.22, sustain=0.2, percussion=0.9, beats_per_note=1.0),
    ),
    Genre(
        "jazz", 0.8, ("soul", "classical"),
        tags=_words("jazz, swing, bebop, saxophone, piano trio, improvisation, smooth jazz, "
                    "cool jazz, standards, big band, fusion, blue note, modal, upright bass"),
        descriptors=_words("swinging, smoky, virtuosic, brushed, intimate, angular"),
        instruments=_words("saxophone, upright bass, piano, trumpet, brushed drums"),
        moods=_words("smoky, sophisticated, mellow, after hours, cozy, rainy"),
        words=_words("jazz, bebop, swing, sax"),
        sound=Sound(bpm=(100, 160), brightness=1.8, octave=60, scale=DORIAN, keys=(5, 10, 3, 0),
                    decay_s=0.3, sustain=0.5, percussion=0.2, beats_per_note=1.0, noise=0.006),
    ),
    Genre(
        "classical", 0.6, ("ambient", "jazz"),
        tags=_words("classical, orchestral, piano, baroque, romantic, symphony, strings, "
                    "chamber music, opera, sonata, concerto, violin, choral, minimalism"),
        descriptors=_words("soaring, delicate, majestic, stately, lyrical, sweeping"),
        instruments=_words("string quartet, piano, violin, cello, full orchestra"),
        moods=_words("calm, elegant, dramatic, focused, serene, reflective"),
        words=_words("classical, piano, strings, orchestral"),
        sound=Sound(bpm=(60, 100), brightness=2.4, octave=60, scale=MAJOR, keys=(0, 7, 2, 5),
                    decay_s=0.8, sustain=0.75, percussion=0.0, beats_per_note=2.0, noise=0.001),
    ),
    Genre(
        "folk", 0.8, ("rock", "ambient"),
        tags=_words("folk, acoustic, singer-songwriter, americana, indie folk, banjo, storytelling, "
                    "country, roots, harmonies, fingerpicking, ballad, campfire, mellow"),
        descriptors=_words("plaintive, warm, earthy, gentle, homespun, wistful"),
        instruments=_words("acoustic guitar, banjo, fiddle, harmonica, mandolin"),
        moods=_words("rainy, cozy, wistful, sunday, campfire, gentle"),
        words=_words("acoustic, folk, singer-songwriter, unplugged"),
        sound=Sound(bpm=(80, 110), brightness=1.6, octave=60, scale=MAJOR_PENTA, keys=(7, 2, 0, 9),
                    decay_s=0.35, sustain=0.25, percussion=0.05, beats_per_note=1.0, noise=0.002),
    ),
    Genre(
        "metal", 0.7, ("rock",),
        tags=_words("metal, heavy metal, thrash, death metal, doom, black metal, shred, riffs, "
                    "headbanging, metalcore, double bass, nordic, brutal, progressive metal"),
        descriptors=_words("crushing, furious, thunderous, menacing, relentless, blistering"),
        instruments=_words("distorted guitar, double bass drums, bass guitar, growled vocals, "
                           "seven-string guitar"),
        moods=_words("angry, dark, brutal, epic, intense, furious"),
        words=_words("metal, thrash, heavy, shred"),
        sound=Sound(bpm=(140, 190), brightness=0.5, octave=36, scale=PHRYGIAN, keys=(4, 2, 9, 11),
                    decay_s=0.1, sustain=0.55, percussion=0.6, beats_per_note=0.5, drive=6.0,
                    noise=0.03),
    ),
    Genre(
        "pop", 1.5, ("electronic", "hip hop", "latin", "soul", "rock"),
        tags=_words("pop, catchy, chart, dance pop, synth pop, hooks, radio, sing-along, teen, "
                    "summer hit, k-pop, ballad, upbeat, vocal"),
        descriptors=_words("catchy, polished, bright, bubbly, upbeat, glossy"),
        instruments=_words("synthesizer, lead vocals, drum machine, piano, claps"),
        moods=_words("happy, summer, feel-good, party, sunny, bittersweet"),
        words=_words("pop, hits, bops, sing-along"),
        sound=Sound(bpm=(100, 125), brightness=1.3, octave=60, scale=MAJOR, keys=(0, 7, 5, 2),
                    decay_s=0.2, sustain=0.4, percussion=0.5, beats_per_note=1.0),
    ),
    Genre(
        "ambient", 0.5, ("electronic", "classical"),
        tags=_words("ambient, drone, atmospheric, chillout, soundscape, new age, downtempo, "
                    "meditation, field recordings, sleep, space, texture, minimal, calm"),
        descriptors=_words("floating, glacial, spacious, hazy, slowly unfolding, ethereal"),
        instruments=_words("synth pads, reverb, field recordings, drones, granular synthesis"),
        moods=_words("calm, dreamy, sleepy, focused, foggy, weightless"),
        words=_words("ambient, drone, soundscapes, chill"),
        sound=Sound(bpm=(60, 80), brightness=3.5, octave=48, scale=MAJOR, keys=(2, 9, 4, 11),
                    decay_s=1.5, sustain=0.9, percussion=0.0, beats_per_note=4.0, noise=0.002),
    ),
    Genre(
        "latin", 0.9, ("reggae", "pop"),
        tags=_words("latin, reggaeton, salsa, bossa nova, cumbia, samba, bachata, tropical, "
                    "latin pop, dembow, percussion, spanish, portuguese, dance"),
        descriptors=_words("sultry, rhythmic, festive, sun-drenched, swaying, fiery"),
        instruments=_words("congas, nylon-string guitar, timbales, brass section, bass"),
        moods=_words("festive, sunny, romantic, summer, hot, carefree"),
        words=_words("latin, reggaeton, salsa, fiesta"),
        sound=Sound(bpm=(95, 115), brightness=1.4, octave=60, scale=MINOR, keys=(7, 9, 2, 4),
                    decay_s=0.15, sustain=0.35, percussion=0.55, beats_per_note=0.5),
    ),
    Genre(
        "reggae", 0.5, ("latin", "soul", "hip hop"),
        tags=_words("reggae, dub, roots reggae, dancehall, ska, jamaica, rocksteady, offbeat, bass, "
                    "riddim, one drop, conscious, sound system, island"),
        descriptors=_words("rolling, laid-back, dubby, sunny, hypnotic, bass-heavy"),
        instruments=_words("bass guitar, skank guitar, organ, melodica, one-drop drums"),
        moods=_words("laid-back, sunny, easy, island, mellow, summer"),
        words=_words("reggae, dub, roots, riddims"),
        sound=Sound(bpm=(70, 90), brightness=1.6, octave=48, scale=MAJOR, keys=(7, 2, 9, 0),
                    decay_s=0.16, sustain=0.3, percussion=0.6, beats_per_note=1.0, offbeat=True),
    ),
    Genre(
        "soul", 0.8, ("hip hop", "jazz", "pop"),
        tags=_words("soul, r&b, funk, motown, neo soul, groove, gospel, vocals, 70s, northern soul, "
                    "falsetto, slow jam, horns, smooth"),
        descriptors=_words("soulful, velvety, funky, heartfelt, grooving, warm"),
        instruments=_words("rhodes piano, horn section, bass, backing vocals, wah guitar"),
        moods=_words("smooth, romantic, groovy, warm, late night, sunday"),
        words=_words("soul, r&b, funk, grooves"),
        sound=Sound(bpm=(80, 105), brightness=1.7, octave=48, scale=DORIAN, keys=(5, 10, 3, 8),
                    decay_s=0.25, sustain=0.45, percussion=0.35, beats_per_note=1.0),
    ),
)
# fmt: on

GENRE_NAMES: tuple[str, ...] = tuple(g.name for g in GENRES)

# Shared words for playlist titles ("rainy sunday acoustic") and track names.
OCCASIONS = _words(
    "sunday, morning, late night, road trip, study, workout, summer, autumn, commute, dinner, "
    "rainy day, weekend, sleep, focus, party, coffee"
)
TITLE_ADJECTIVES = _words(
    "golden, midnight, broken, electric, silver, lonely, wild, quiet, burning, endless, hollow, "
    "velvet, crimson, paper, distant, neon, frozen, sweet, lost, northern, secret, little, heavy, "
    "bright"
)
TITLE_NOUNS = _words(
    "heart, river, city, light, dream, fire, road, ocean, summer, ghost, garden, mirror, signal, "
    "harbor, window, shadow, horizon, train, letter, storm, echo, machine, moon, island, sky, "
    "wolf, rose, static"
)


@dataclass(frozen=True)
class Region:
    code: str  # ISO 3166-1 alpha-2
    demonym: str
    share: float  # share of listeners and artists
    utc_offset: int  # hours; the listening clock is local
    cities: tuple[str, ...]
    bias: dict[str, float]  # genre popularity multipliers; 1 where absent


# fmt: off
REGIONS: tuple[Region, ...] = (
    Region("US", "American", 0.30, -5, _words("New York, Los Angeles, Chicago, Atlanta, Austin"),
           {"hip hop": 2.0, "pop": 1.4, "soul": 1.6, "rock": 1.2, "folk": 1.3}),
    Region("GB", "British", 0.12, 0, _words("London, Manchester, Glasgow, Bristol"),
           {"rock": 1.7, "electronic": 1.5, "pop": 1.3, "reggae": 1.2}),
    Region("DE", "German", 0.12, 1, _words("Berlin, Hamburg, Munich, Cologne"),
           {"electronic": 2.2, "metal": 1.6, "classical": 1.5, "hip hop": 0.8}),
    Region("BR", "Brazilian", 0.12, -3, _words("São Paulo, Rio de Janeiro, Salvador, Belo Horizonte"),
           {"latin": 2.5, "pop": 1.2, "metal": 1.2, "reggae": 1.3, "classical": 0.6}),
    Region("SE", "Swedish", 0.08, 1, _words("Stockholm, Gothenburg, Malmö, Uppsala"),
           {"metal": 2.2, "pop": 1.6, "electronic": 1.4, "latin": 0.5}),
    Region("JP", "Japanese", 0.10, 9, _words("Tokyo, Osaka, Kyoto, Fukuoka"),
           {"pop": 1.8, "jazz": 1.8, "ambient": 1.6, "classical": 1.4, "reggae": 0.5, "latin": 0.5}),
    Region("MX", "Mexican", 0.08, -6, _words("Mexico City, Guadalajara, Monterrey, Puebla"),
           {"latin": 3.0, "pop": 1.2, "reggae": 1.2, "metal": 0.7}),
    Region("FR", "French", 0.08, 1, _words("Paris, Lyon, Marseille, Bordeaux"),
           {"electronic": 1.6, "hip hop": 1.7, "jazz": 1.4, "folk": 1.1}),
)
# fmt: on

REGION_CODES: tuple[str, ...] = tuple(r.code for r in REGIONS)

PLATFORMS = ("android", "ios", "desktop", "web")
PLATFORM_SHARE = (0.45, 0.33, 0.16, 0.06)

# Listening by local hour of day: quiet at night, a morning commute, an evening peak.
# fmt: off
HOUR_WEIGHTS = (
    0.6, 0.35, 0.2, 0.12, 0.1, 0.15, 0.4, 0.9, 1.3, 1.1, 1.0, 1.1,
    1.3, 1.2, 1.1, 1.1, 1.3, 1.6, 1.8, 1.9, 1.8, 1.6, 1.3, 0.9,
)
# fmt: on
