# Type stubs of the vcortex package (the public API of vcortex/__init__.py).
from os import PathLike
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = Union[npt.ArrayLike, Any]  # numpy arrays, or objects with .numpy() (torch tensors)
Path = Union[str, PathLike]
Config = Union[Path, Mapping[str, Any], str]
Weights = Union[Path, Mapping[str, ArrayLike]]
IntPair = Union[int, Tuple[int, int]]
F32 = npt.NDArray[np.float32]

class VcortexError(ValueError):
    kind: str
    op: Optional[str]
    field: Optional[str]

class DeviceError(RuntimeError):
    kind: str
    op: Optional[str]
    field: Optional[str]

class InternalError(RuntimeError): ...

class Context:
    def __init__(self, adapter: Optional[str] = None) -> None: ...
    def info(self) -> Dict[str, Any]: ...
    def trim(self) -> None: ...

def default_context() -> Context: ...
def adapters() -> List[Dict[str, str]]: ...
@overload
def read_safetensors(path: Union[str, PathLike], *, weights: bool = False, metadata: Literal[False] = False) -> Dict[str, F32]: ...
@overload
def read_safetensors(
    path: Union[str, PathLike], *, weights: bool = False, metadata: Literal[True]
) -> Tuple[Dict[str, F32], Dict[str, str]]: ...
def write_safetensors(
    path: Union[str, PathLike], tensors: Mapping[str, ArrayLike], metadata: Optional[Mapping[str, str]] = None
) -> None: ...
def run_op(
    op: str, tensors: Mapping[str, ArrayLike], params: Optional[Mapping[str, str]] = None, *, context: Optional[Context] = None
) -> Dict[str, F32]: ...

# Ops: PyTorch's names and defaults; one submit each.
def conv2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: Optional[ArrayLike] = None,
    stride: IntPair = 1,
    padding: Union[int, Tuple[int, int], Tuple[int, int, int, int], str] = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def conv3d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: Optional[ArrayLike] = None,
    stride: Union[int, Tuple[int, int, int]] = 1,
    padding: Union[int, Tuple[int, int, int], Tuple[int, int, int, int, int, int]] = 0,
    dilation: Union[int, Tuple[int, int, int]] = 1,
    groups: int = 1,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def scores(
    responses: ArrayLike,
    predictions: ArrayLike,
    image_ids: Optional[ArrayLike] = None,
    eps: float = 1e-8,
    *,
    context: Optional[Context] = None,
) -> Dict[str, F32]: ...
def conv_gru(
    input: ArrayLike,
    weights: Mapping[str, ArrayLike],
    groups: int = 1,
    pad_input: bool = True,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def gru(
    input: ArrayLike,
    weight_ih_l0: ArrayLike,
    weight_hh_l0: ArrayLike,
    bias_ih_l0: Optional[ArrayLike] = None,
    bias_hh_l0: Optional[ArrayLike] = None,
    h0: Optional[ArrayLike] = None,
    *,
    context: Optional[Context] = None,
) -> Tuple[F32, F32]: ...
def zig_readout(
    input: ArrayLike,
    mu: ArrayLike,
    conv_weight: ArrayLike,
    features: ArrayLike,
    frames: int,
    conv_bias: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None,
    shift: Optional[ArrayLike] = None,
    align_corners: bool = True,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def zig_map(input: ArrayLike, map: str, *, context: Optional[Context] = None) -> F32: ...
def zig_moments(
    q: ArrayLike, theta: ArrayLike, k: ArrayLike, loc: ArrayLike, moment: str = "mean", *, context: Optional[Context] = None
) -> F32: ...
def zig_latent_params(
    logits: ArrayLike, z: ArrayLike, w_q: ArrayLike, w_theta: ArrayLike, *, context: Optional[Context] = None
) -> Tuple[F32, F32]: ...
def zig_latent_loglik(
    target: ArrayLike,
    logits: ArrayLike,
    z: ArrayLike,
    w_q: ArrayLike,
    w_theta: ArrayLike,
    k: ArrayLike,
    loc: ArrayLike,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def linear(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, *, context: Optional[Context] = None) -> F32: ...
def activation(
    input: ArrayLike,
    kind: str,
    *,
    beta: Optional[float] = None,
    threshold: Optional[float] = None,
    xshift: Optional[float] = None,
    yshift: Optional[float] = None,
    context: Optional[Context] = None,
) -> F32: ...
def relu(input: ArrayLike, *, context: Optional[Context] = None) -> F32: ...
def elu(input: ArrayLike, alpha: float = 1.0, *, context: Optional[Context] = None) -> F32: ...
def elu1(input: ArrayLike, *, context: Optional[Context] = None) -> F32: ...
def sigmoid(input: ArrayLike, *, context: Optional[Context] = None) -> F32: ...
def tanh(input: ArrayLike, *, context: Optional[Context] = None) -> F32: ...
def softplus(input: ArrayLike, beta: float = 1.0, threshold: float = 20.0, *, context: Optional[Context] = None) -> F32: ...
def gelu(input: ArrayLike, approximate: str = "none", *, context: Optional[Context] = None) -> F32: ...
def silu(input: ArrayLike, *, context: Optional[Context] = None) -> F32: ...
def adaptive_elu(input: ArrayLike, xshift: float = 0.0, yshift: float = 0.0, *, context: Optional[Context] = None) -> F32: ...
def batch_norm(
    input: ArrayLike,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def layer_norm(
    input: ArrayLike,
    normalized_shape: Union[int, Sequence[int]],
    weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None,
    eps: float = 1e-5,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def divisive_norm(
    input: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    field: str = "local",
    sum_window: IntPair = 3,
    sup_window: IntPair = 3,
    sigma: float = 1.0,
    sup_divisor: str = "sum_window",
    return_centered: bool = False,
    *,
    context: Optional[Context] = None,
) -> Union[F32, Tuple[F32, F32]]: ...
def neurn(
    input: ArrayLike, kernel: int = 3, max_scope: str = "channel", eps: float = 1e-8, *, context: Optional[Context] = None
) -> F32: ...
def max_pool2d(
    input: ArrayLike,
    kernel_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def avg_pool2d(
    input: ArrayLike,
    kernel_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def grid_sample(
    input: ArrayLike,
    grid: ArrayLike,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: Optional[bool] = None,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def gaussian_readout(
    input: ArrayLike,
    mu: ArrayLike,
    features: ArrayLike,
    bias: Optional[ArrayLike] = None,
    shift: Optional[ArrayLike] = None,
    align_corners: bool = True,
    *,
    context: Optional[Context] = None,
) -> F32: ...
def poisson_nll(
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = False,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
    *,
    context: Optional[Context] = None,
) -> F32: ...
def zig_loglik(
    target: ArrayLike, q: ArrayLike, theta: ArrayLike, k: ArrayLike, loc: ArrayLike, *, context: Optional[Context] = None
) -> F32: ...
def affine_coupling(
    input: ArrayLike,
    shift: ArrayLike,
    scale_raw: ArrayLike,
    mask: ArrayLike,
    inverse: bool = False,
    *,
    context: Optional[Context] = None,
) -> Tuple[F32, F32]: ...
def rq_spline(
    inputs: ArrayLike,
    unnormalized_widths: ArrayLike,
    unnormalized_heights: ArrayLike,
    unnormalized_derivatives: ArrayLike,
    inverse: bool = False,
    tails: str = "linear",
    tail_bound: float = 1.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
    *,
    context: Optional[Context] = None,
) -> Tuple[F32, F32]: ...
def ddpm_step(
    model_output: ArrayLike,
    timestep: int,
    sample: ArrayLike,
    variance_noise: Optional[ArrayLike] = None,
    *,
    num_train_timesteps: int = 1000,
    num_inference_steps: Optional[int] = None,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
    variance_type: str = "fixed_small",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    prediction_type: str = "epsilon",
    thresholding: bool = False,
    dynamic_thresholding_ratio: float = 0.995,
    sample_max_value: float = 1.0,
    context: Optional[Context] = None,
) -> Dict[str, F32]: ...
def ddim_step(
    model_output: ArrayLike,
    timestep: int,
    sample: ArrayLike,
    eta: float = 0.0,
    variance_noise: Optional[ArrayLike] = None,
    *,
    num_train_timesteps: int = 1000,
    num_inference_steps: Optional[int] = None,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    set_alpha_to_one: bool = True,
    steps_offset: int = 0,
    prediction_type: str = "epsilon",
    thresholding: bool = False,
    dynamic_thresholding_ratio: float = 0.995,
    sample_max_value: float = 1.0,
    timestep_spacing: str = "leading",
    context: Optional[Context] = None,
) -> Dict[str, F32]: ...

# Models
class _Model:
    context: Context
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Any: ...

class Sensorium(_Model):
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Sensorium: ...
    @property
    def data_keys(self) -> List[str]: ...
    def predict(
        self,
        images: ArrayLike,
        data_key: Optional[str] = None,
        pupil_center: Optional[ArrayLike] = None,
        behavior: Optional[ArrayLike] = None,
        batch: int = 128,
    ) -> Dict[str, F32]: ...

class Video(_Model):
    @property
    def data_keys(self) -> List[str]: ...
    def predict(
        self, video: ArrayLike, data_key: Optional[str] = None, pupil_center: Optional[ArrayLike] = None
    ) -> Dict[str, F32]: ...
    @property
    def input_channels(self) -> int: ...
    def stream(self, data_key: str, batch: int, height: int, width: int) -> VideoStream: ...

class VideoStream:
    model: Video
    @property
    def data_key(self) -> str: ...
    def push(self, frames: ArrayLike, pupil_center: Optional[ArrayLike] = None) -> F32: ...
    @property
    def frames_seen(self) -> int: ...
    def reset(self) -> None: ...

class Latent(_Model):
    @property
    def data_key(self) -> str: ...
    def predict(
        self,
        video: ArrayLike,
        responses: Optional[ArrayLike] = None,
        samples: Optional[int] = None,
        seed: Optional[int] = None,
        conditioned: Optional[bool] = None,
    ) -> Dict[str, F32]: ...
    def stream(
        self,
        batch: int,
        height: int,
        width: int,
        conditioned: bool = False,
        samples: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> LatentStream: ...

class LatentStream:
    model: Latent
    def push(self, frames: ArrayLike, responses: Optional[ArrayLike] = None) -> Dict[str, F32]: ...
    def finish(self) -> Dict[str, F32]: ...
    @property
    def frames_seen(self) -> int: ...
    @property
    def frames_emitted(self) -> int: ...
    def reset(self) -> None: ...

class Cotrain(_Model):
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Cotrain: ...
    @property
    def data_keys(self) -> List[str]: ...
    def predict(self, images: ArrayLike, data_key: Optional[str] = None, batch: int = 128) -> Dict[str, F32]: ...

class Flow(_Model):
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Flow: ...
    def log_prob(self, x: ArrayLike) -> Dict[str, F32]: ...
    def sample(self, n: int, temperature: float = 1.0, seed: int = 0) -> F32: ...

class Cgnf(_Model):
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Cgnf: ...
    def log_prob(
        self,
        poses: ArrayLike,
        keypoints: Optional[ArrayLike] = None,
        observed: Optional[ArrayLike] = None,
        root: Optional[ArrayLike] = None,
    ) -> Dict[str, F32]: ...
    def sample(
        self,
        n: int,
        keypoints: Optional[ArrayLike] = None,
        observed: Optional[ArrayLike] = None,
        root: Optional[ArrayLike] = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> Dict[str, F32]: ...
    def mode(
        self, keypoints: Optional[ArrayLike] = None, observed: Optional[ArrayLike] = None, root: Optional[ArrayLike] = None
    ) -> F32: ...

class Platypose(_Model):
    @classmethod
    def load(cls, weights: Weights, config: Config, *, context: Optional[Context] = None) -> Platypose: ...
    def sample(
        self,
        samples: int = 200,
        frames: Optional[int] = None,
        observations: Optional[Mapping[str, ArrayLike]] = None,
        seed: int = 0,
    ) -> Dict[str, F32]: ...

def load(
    weights: Weights, config: Config, *, context: Optional[Context] = None
) -> Union[Sensorium, Cotrain, Flow, Cgnf, Platypose]: ...
def from_state_dict(
    state_dict: Mapping[str, Any], config: Config, *, context: Optional[Context] = None
) -> Union[Sensorium, Cotrain, Flow, Cgnf, Platypose]: ...
