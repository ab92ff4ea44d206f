"""The two translation directions and their channel conventions.

Infrared is one channel inside the library (LLVIP ships it as 3-channel gray JPEG; we fold it);
visible is RGB. Everything that depends on the direction asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass

MODALITY_CHANNELS = {"infrared": 1, "visible": 3}


@dataclass(frozen=True)
class Direction:
    name: str
    source: str  # modality fed to the generator
    target: str  # modality it predicts

    @property
    def in_channels(self) -> int:
        return MODALITY_CHANNELS[self.source]

    @property
    def out_channels(self) -> int:
        return MODALITY_CHANNELS[self.target]

    @property
    def label(self) -> str:
        return f"{self.source.capitalize()} -> {self.target.capitalize()}"


DIRECTIONS = {
    "ir2vis": Direction("ir2vis", source="infrared", target="visible"),
    "vis2ir": Direction("vis2ir", source="visible", target="infrared"),
}


def get_direction(name: str | Direction) -> Direction:
    if isinstance(name, Direction):
        return name
    try:
        return DIRECTIONS[name]
    except KeyError:
        raise ValueError(f"unknown direction {name!r}: use one of {', '.join(DIRECTIONS)}") from None
