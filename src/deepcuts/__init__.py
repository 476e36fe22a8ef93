"""deepcuts: personalised music recommendation, as Spotify personalises listening."""

__version__ = "0.1.0"
