"""Stage 1 (squeeze): a teacher trained on real data and its per-class BatchNorm statistics, in a `.lpqt` file."""

from lpq.squeeze.squeeze import SqueezeConfig, SqueezeResult, squeeze
from lpq.squeeze.teacher import Teacher, TeacherMeta, load_teacher, save_teacher

__all__ = ["SqueezeConfig", "SqueezeResult", "Teacher", "TeacherMeta", "load_teacher", "save_teacher", "squeeze"]
