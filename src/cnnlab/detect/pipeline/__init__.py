"""Real-time detection pipeline: sources -> capture thread -> timed stages -> sinks (window, video,
images, JSON lines, web live view), with honest FPS and a `--max-fps` throttle. See docs/stream.md."""

from cnnlab.detect.pipeline.runner import Pipeline, PipelineSummary, build_sinks, run_pipeline
from cnnlab.detect.pipeline.sinks import (
    CallbackSink,
    FrameResult,
    ImageSink,
    JsonlSink,
    Sink,
    VideoSink,
    WebSink,
    WindowSink,
    gui_available,
)
from cnnlab.detect.pipeline.sources import (
    CaptureThread,
    Frame,
    FrameSource,
    ImageSequenceSource,
    SourceInfo,
    VideoCaptureSource,
    open_source,
)
from cnnlab.detect.pipeline.stream import stream_results
from cnnlab.detect.pipeline.timing import STAGES, FpsMeter, StageTimes, Throttle

__all__ = [
    "STAGES", "CallbackSink", "CaptureThread", "FpsMeter", "Frame", "FrameResult", "FrameSource",
    "ImageSequenceSource", "ImageSink", "JsonlSink", "Pipeline", "PipelineSummary", "Sink",
    "SourceInfo", "StageTimes", "Throttle", "VideoCaptureSource", "VideoSink", "WebSink",
    "WindowSink", "build_sinks", "gui_available", "open_source", "run_pipeline", "stream_results",
]
