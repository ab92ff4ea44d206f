"""The two translation directions and their channel conventions.

Infrared is one channel inside the library (LLVIP ships it as 3-channel gray JPEG; we fold it);
visible is RGB. Everything that depends on the direction asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

MODALITY_CHANNELS = {"infrared": 1, "visible": 3}
T = TypeVar("T")


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

    def arrange(self, infrared: T, visible: T) -> tuple[T, T]:
        """(source, target) of this direction from an (infrared, visible) pair: the one place that swaps them."""
        return (infrared, visible) if self.source == "infrared" else (visible, infrared)

    def mismatch(self, asked: "str | Direction | None", holder: object) -> str | None:
        """None when a generator of this direction may serve `asked` (None: anything), else the problem:
        "<holder> holds a <this> generator, not <asked>"."""
        if asked is None or get_direction(asked).name == self.name:
            return None
        return f"{holder} holds a {self.name} generator, not {get_direction(asked).name}"


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
