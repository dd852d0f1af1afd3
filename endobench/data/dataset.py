"""`Dataset`: a named collection of clips (video) or still images, as opened from the registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from endobench.data.clip import Clip, ImageSample
from endobench.data.errors import Problem

DatasetKind = Literal["video", "images"]
OnError = Literal["raise", "skip"]


class Dataset:
    """A dataset opened from the registry.

    ``kind`` is "video" (ordered clips) or "images" (still images; ``clips()`` still groups
    them, e.g. BAGLS frames by recording, but the order inside a group is not temporal).
    ``classes`` maps label ids to names after any ``target`` was applied. ``problems`` lists
    the bad files that ``on_error="skip"`` left out (empty in the default "raise" mode).
    """

    def __init__(
        self,
        name: str,
        kind: DatasetKind,
        classes: dict[int, str],
        make_clips: Callable[[], list[Clip]],
        format: str,
        root: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.kind: DatasetKind = kind
        self.classes = dict(classes)
        self.format = format
        self.root = root
        self.meta: dict[str, Any] = dict(meta or {})
        self.problems: list[Problem] = []
        self._make_clips = make_clips
        self._clips: list[Clip] | None = None

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, format={self.format!r}, kind={self.kind!r}, "
            f"classes={self.classes})"
        )

    def clips(self) -> list[Clip]:
        """All clips (built once, frames still read lazily)."""
        if self._clips is None:
            self._clips = self._make_clips()
        return self._clips

    def images(self) -> Iterator[ImageSample]:
        """Every still image (images datasets) or every annotated frame (video datasets).

        Yields one decoded `ImageSample` at a time; its ``id`` is ``"<clip>/<frame>"`` and its
        meta holds the clip name and frame index.
        """
        for clip in self.clips():
            indices = clip.annotated if self.kind == "video" else range(len(clip))
            for i in indices:
                yield ImageSample(
                    id=f"{clip.name}/{clip.frame_names[i]}",
                    image=clip.frame(i),
                    mask=clip.mask(i),
                    classes=dict(clip.classes),
                    meta={"clip": clip.name, "index": int(i), "dataset": self.name},
                )

    def num_frames(self) -> int:
        """Total number of frames (or images) over all clips."""
        return sum(len(clip) for clip in self.clips())
