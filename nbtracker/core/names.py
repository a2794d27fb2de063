"""Readable generated run names such as ``brisk-otter-7``."""

from __future__ import annotations

import os

_ADJECTIVES = (
    "amber brave brisk calm clever cosmic crisp dapper eager fancy gentle golden happy hardy "
    "jolly keen lively lucky mellow merry nimble noble plucky quiet rapid rustic shiny silent "
    "snowy solar spry stellar sunny swift tidy vivid witty zesty").split()
_ANIMALS = (
    "badger beaver bison cheetah condor coyote crane dingo dolphin eagle falcon ferret gecko "
    "heron ibis jaguar koala lemur lynx marten moose narwhal newt ocelot orca otter owl panda "
    "puffin quokka raven salmon seal stoat tapir toucan walrus wombat yak zebra").split()


def generate(number: int) -> str:
    """A random adjective-animal pair followed by ``number`` (the run's ordinal in its project)."""
    a, b = os.urandom(2)
    return f"{_ADJECTIVES[a % len(_ADJECTIVES)]}-{_ANIMALS[b % len(_ANIMALS)]}-{number}"
