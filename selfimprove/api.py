"""What a plugin imports from selfimprove: the records, the protocols, the capabilities a component declares
(``selfimprove.capabilities``), the error type and the answer helpers.

Everything here is kept stable across minor versions; reach into other modules at your own risk.

    from selfimprove.api import Rollout, Verdict, UserError, final_answer
"""

from selfimprove.capabilities import (
    GatheringGenerator,
    LiveGenerator,
    LiveWeights,
    OnlineUpdater,
    PolicyJudge,
    ReadsBuffers,
    ReadsRoles,
)
from selfimprove.errors import UserError
from selfimprove.generators import Generator, Output, Request
from selfimprove.models import Policy
from selfimprove.records import Example, Messages, Problem, Rollout, Verdict
from selfimprove.verifiers import Verifier
from selfimprove.verifiers.extract import extract_final_number, final_answer, last_boxed, last_code_block
from selfimprove.verifiers.numeric import last_number

__all__ = [
    "Example",
    "GatheringGenerator",
    "Generator",
    "LiveGenerator",
    "LiveWeights",
    "Messages",
    "OnlineUpdater",
    "Output",
    "Policy",
    "PolicyJudge",
    "Problem",
    "ReadsBuffers",
    "ReadsRoles",
    "Request",
    "Rollout",
    "UserError",
    "Verdict",
    "Verifier",
    "extract_final_number",
    "final_answer",
    "last_boxed",
    "last_code_block",
    "last_number",
]
