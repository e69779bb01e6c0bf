"""Film and video: ``colorize-rt clip.mp4`` (``job.colorize_video``), PyAV reading/writing (``io``) and the
temporal stabiliser (``stabilize``). Nothing here is imported for photos: PyAV loads only with a video."""
