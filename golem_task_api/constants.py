"""Directory names of the work-dir layout (proto/constants.proto).

Plain literals, so importing them costs nothing; tests/test_wire_contract.py
checks them against the file options of the generated descriptor.
"""

TASK_INPUTS_DIR = "task_inputs"
SUBTASK_INPUTS_DIR = "subtask_inputs"
TASK_OUTPUTS_DIR = "task_outputs"
SUBTASK_OUTPUTS_DIR = "subtask_outputs"
WORK_DIR = "golem/work"

__all__ = [
    "SUBTASK_INPUTS_DIR",
    "SUBTASK_OUTPUTS_DIR",
    "TASK_INPUTS_DIR",
    "TASK_OUTPUTS_DIR",
    "WORK_DIR",
]
