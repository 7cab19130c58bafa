"""The Blender side of the app: run inside Blender, never imported by the app.

    blender -b --factory-startup -noaudio -Y --python-exit-code 1 \\
        --python blender_job.py -- JOB.json

JOB.json holds {"command": ..., "result": RESULT.json, ...}; the result (or
{"error": ...}) is written to RESULT.json. Only the standard library and bpy
are available here (Debian's Blender has no numpy), so pixels leave Blender
as raw float32 files that the app reads with numpy.

Pixel coordinates are Blender's: x from the left, y from the bottom, and
rectangles are [x0, y0, x1, y1) in pixels of the full frame.

On stdout, lines `@golem-blender {json}` mark what happens (the frame being
rendered, a file saved); they share the stream with Blender's own status
lines (`Fra:1 ... | Sample 12/64`), in order, and the app turns both into
progress (apps/blender/progress.py).
"""

import array
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import bpy  # type: ignore[import-not-found]

MARKER = "@golem-blender "
FORMATS = {"PNG": ("PNG", "png"), "EXR": ("OPEN_EXR", "exr")}

Json = dict[str, Any]


def emit(event: str, **fields: Any) -> None:
    # A leading newline: Blender's last status line may still lack its own.
    print("\n" + MARKER + json.dumps({"event": event, **fields}), flush=True)


def write_json(path: str, value: Json) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


# -- scenes and render settings --------------------------------------------------


def open_scene(path: str) -> Any:
    if not os.path.isfile(path):
        raise UserError(f"no scene file {path}")
    try:
        # use_scripts=False: a scene's own Python (drivers, startup scripts)
        # never runs; the file comes from someone else.
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise UserError(str(exc).replace("Error: ", "").strip()) from None
    return bpy.context.scene


def configure(scene: Any, job: Json, region: list[int] | None, seed_offset: int = 0) -> None:
    """The settings every render of a task shares, so that a provider's frame
    and the requestor's re-render of a crop of it agree pixel for pixel."""
    render = scene.render
    cycles = scene.cycles
    render.engine = "CYCLES"
    cycles.device = "CPU"
    width, height = job["resolution"]
    render.resolution_x = width
    render.resolution_y = height
    render.resolution_percentage = 100
    cycles.samples = job["samples"]
    cycles.seed = cycles.seed + seed_offset
    if hasattr(cycles, "time_limit"):
        cycles.time_limit = 0  # a time limit makes the sample count vary
    # Debian's Blender has no OpenImageDenoise; a denoised crop would not
    # match a denoised frame anyway (the denoiser looks at neighbours).
    cycles.use_denoising = False
    for layer in scene.view_layers:
        layer.cycles.use_denoising = False
    # Frame-wide effects (glare, blur, stamps burnt into pixels) differ
    # between a frame and a crop of it.
    render.use_compositing = False
    render.use_sequencer = False
    render.use_stamp = False
    render.use_multiview = False
    render.use_overwrite = True
    render.use_placeholder = False
    render.use_file_extension = True
    threads = job.get("threads")
    render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        render.threads = threads
    set_region(scene, region)
    set_format(render.image_settings, job["format"])


def set_region(scene: Any, region: list[int] | None) -> None:
    render = scene.render
    if region is None:
        render.use_border = False
        return
    width, height = render.resolution_x, render.resolution_y
    x0, y0, x1, y1 = region
    render.use_border = True
    render.use_crop_to_border = True
    # Blender truncates border * size to whole pixels: aim at pixel centres.
    render.border_min_x = 0.0 if x0 == 0 else (x0 + 0.5) / width
    render.border_min_y = 0.0 if y0 == 0 else (y0 + 0.5) / height
    render.border_max_x = 1.0 if x1 == width else (x1 + 0.5) / width
    render.border_max_y = 1.0 if y1 == height else (y1 + 0.5) / height


def set_format(settings: Any, name: str) -> None:
    settings.file_format = FORMATS[name][0]
    settings.color_mode = "RGBA"
    if name == "PNG":
        settings.color_depth = "8"
        settings.compression = 15
    else:
        settings.color_depth = "16"  # half float
        settings.exr_codec = "ZIP"


def render_frame(scene: Any, frame: int, path: str) -> None:
    scene.frame_set(frame)
    scene.render.filepath = path
    result = bpy.ops.render.render(write_still=True)
    if "FINISHED" not in result or not os.path.isfile(path):
        raise RuntimeError(f"Blender did not render frame {frame} ({sorted(result)})")


# -- images ----------------------------------------------------------------------


def load_image(path: str) -> Any:
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise UserError(str(exc).replace("Error: ", "").strip()) from None
    if not image.has_data and tuple(image.size) == (0, 0):
        raise UserError(f"{os.path.basename(path)} cannot be read as an image")
    return image


def pixels_of(image: Any) -> "array.array[float]":
    buffer = array.array("f", bytes(4 * len(image.pixels)))
    image.pixels.foreach_get(buffer)
    return buffer


def channels_of(image: Any, pixels: "array.array[float]") -> int:
    width, height = image.size
    return int(len(pixels) // max(1, width * height))


def cut(
    pixels: "array.array[float]", width: int, channels: int, rect: list[int]
) -> "array.array[float]":
    """Rows y0..y1 and columns x0..x1 of an image `width` pixels wide, as RGBA."""
    x0, y0, x1, y1 = rect
    out = array.array("f")
    for y in range(y0, y1):
        row = pixels[(y * width + x0) * channels:(y * width + x1) * channels]
        if channels == 4:
            out.extend(row)
            continue
        for x in range(x1 - x0):
            px = row[x * channels:(x + 1) * channels]
            grey = channels < 3
            rgb = [px[0]] * 3 if grey else list(px[:3])
            alpha = px[-1] if channels in (2, 4) else 1.0
            out.extend([*rgb, alpha])
    return out


def dump(pixels: "array.array[float]", path: str) -> str:
    with open(path, "wb") as f:
        pixels.tofile(f)
    return path


def channel_stats(pixels: "array.array[float]", channels: int) -> Json:
    mins, maxs, sums = [], [], []
    for c in range(channels):
        values = pixels[c::channels]
        total = math.fsum(values) if len(values) else 0.0
        sums.append(total if math.isfinite(total) else None)
        finite = math.isfinite(total)
        mins.append(min(values) if finite and len(values) else None)
        maxs.append(max(values) if finite and len(values) else None)
    return {"min": mins, "max": maxs, "sum": sums}


def save_pixels(pixels: "array.array[float]", size: list[int], fmt: str, path: str) -> None:
    width, height = size
    is_float = fmt == "EXR"
    image = bpy.data.images.new("golem-output", width, height, alpha=True, float_buffer=is_float)
    if not is_float:
        image.colorspace_settings.name = "sRGB"
    image.pixels.foreach_set(pixels)
    tmp = path + ".tmp." + FORMATS[fmt][1]
    if is_float:
        # save_render writes the scene's image settings (half-float ZIP); EXR
        # is scene-linear, so no view transform is applied.
        scene = bpy.context.scene
        set_format(scene.render.image_settings, fmt)
        image.save_render(tmp, scene=scene)
    else:
        # Byte pixels as they are: no colour management on the way out.
        image.filepath_raw = tmp
        image.file_format = "PNG"
        image.save()
    bpy.data.images.remove(image)
    os.replace(tmp, path)


# -- commands --------------------------------------------------------------------


def inspect(job: Json) -> Json:
    scene = open_scene(job["scene"])
    render = scene.render
    pct = render.resolution_percentage / 100.0
    external = []
    for path in bpy.utils.blend_paths(absolute=False, packed=False, local=False):
        external.append({"path": path, "relative": path.startswith("//")})
    return {
        "engine": render.engine,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "resolution": [max(1, round(render.resolution_x * pct)),
                       max(1, round(render.resolution_y * pct))],
        "samples": scene.cycles.samples if render.engine == "CYCLES" else None,
        "has_camera": scene.camera is not None,
        "external_files": external,
        "blender_version": bpy.app.version_string,
    }


def render(job: Json) -> Json:
    scene = open_scene(job["scene"])
    configure(scene, job, job.get("region"), job.get("seed_offset", 0))
    ext = FORMATS[job["format"]][1]
    frames = job["frames"]
    files = {}
    started = time.monotonic()
    for index, frame in enumerate(frames):
        emit("frame", frame=frame, index=index, count=len(frames))
        name = f"frame{frame:04d}.{ext}"
        render_frame(scene, frame, os.path.join(job["out_dir"], name))
        emit("saved", frame=frame, index=index, count=len(frames), file=name)
        files[str(frame)] = name
    return {"files": files, "seconds": time.monotonic() - started}


def verify(job: Json) -> Json:
    """For each frame: read the provider's image (size, format, channel
    stats) and cut the crop to compare; re-render the crop (with a margin)
    with the task's settings; if the two differ by more than `tolerance`,
    also with another seed, which tells how far apart two honest renders of
    that crop may be. The comparison itself is the app's (numpy)."""
    scene = open_scene(job["scene"])
    ext = FORMATS[job["format"]][1]
    results = []
    for index, item in enumerate(job["frames"]):
        results.append(verify_frame(scene, job, item, ext, str(index)))
    return {"frames": results}


def verify_frame(scene: Any, job: Json, item: Json, ext: str, key: str) -> Json:
    frame = item["frame"]
    out = {"frame": frame, "error": None}
    region = item["region"]
    expected = [region[2] - region[0], region[3] - region[1]]
    try:
        image = load_image(item["image"])
    except UserError as exc:
        out["error"] = f"cannot be read as an image ({exc})"
        return out
    out["size"] = list(image.size)
    out["file_format"] = image.file_format
    out["is_float"] = bool(image.is_float)
    if list(image.size) != expected:
        return out
    pixels = pixels_of(image)
    channels = channels_of(image, pixels)
    out["channels"] = channels
    out["stats"] = channel_stats(pixels, channels)
    bpy.data.images.remove(image)
    crop, padded = item["crop"], item["padded"]
    inside = [crop[0] - region[0], crop[1] - region[1], crop[2] - region[0], crop[3] - region[1]]
    provider = cut(pixels, expected[0], channels, inside)
    del pixels
    out["provider"] = dump(provider, os.path.join(job["out_dir"], f"{key}-provider.f32"))
    reference = render_crop(scene, job, frame, crop, padded, 0, ext)
    out["reference"] = dump(reference, os.path.join(job["out_dir"], f"{key}-reference.f32"))
    diff = max((abs(a - b) for a, b in zip(provider, reference, strict=True)), default=0.0)
    out["max_diff"] = diff if math.isfinite(diff) else None
    out["yardstick"] = None
    if not (math.isfinite(diff) and diff <= job["tolerance"]):
        other = render_crop(scene, job, frame, crop, padded, job.get("seed_offset", 1), ext)
        out["yardstick"] = dump(other, os.path.join(job["out_dir"], f"{key}-yardstick.f32"))
    return out


def render_crop(
    scene: Any, job: Json, frame: int, crop: list[int], padded: list[int], seed_offset: int,
    ext: str,
) -> "array.array[float]":
    """Render `padded` (a margin around `crop`: adaptive sampling looks at
    neighbouring pixels) and keep `crop`."""
    seed = scene.cycles.seed
    configure(scene, job, padded, seed_offset)
    path = os.path.join(job["out_dir"], f"{frame}-render-{seed_offset}.{ext}")
    try:
        render_frame(scene, frame, path)
    finally:
        scene.cycles.seed = seed
    image = load_image(path)
    pixels = pixels_of(image)
    channels = channels_of(image, pixels)
    width = padded[2] - padded[0]
    inside = [crop[0] - padded[0], crop[1] - padded[1], crop[2] - padded[0], crop[3] - padded[1]]
    bpy.data.images.remove(image)
    os.remove(path)
    return cut(pixels, width, channels, inside)


def merge(job: Json) -> Json:
    """Stitch tiles (each an image of its region) into one frame."""
    width, height = job["resolution"]
    frame = array.array("f", bytes(4 * width * height * 4))
    for tile in job["tiles"]:
        x0, y0, x1, y1 = tile["region"]
        image = load_image(tile["image"])
        if list(image.size) != [x1 - x0, y1 - y0]:
            raise RuntimeError(f"{tile['image']} is {tuple(image.size)}, not its region's size")
        pixels = pixels_of(image)
        rgba = cut(pixels, x1 - x0, channels_of(image, pixels), [0, 0, x1 - x0, y1 - y0])
        bpy.data.images.remove(image)
        row = (x1 - x0) * 4
        for y in range(y0, y1):
            start = (y * width + x0) * 4
            frame[start:start + row] = rgba[(y - y0) * row:(y - y0 + 1) * row]
    save_pixels(frame, [width, height], job["format"], job["out"])
    return {"out": job["out"]}


def dump_images(job: Json) -> Json:
    """Raw RGBA float32 pixels of images (for tests and calibration)."""
    out = []
    for index, path in enumerate(job["images"]):
        image = load_image(path)
        pixels = pixels_of(image)
        width, height = image.size
        rgba = cut(pixels, width, channels_of(image, pixels), [0, 0, width, height])
        target = os.path.join(job["out_dir"], f"{index}.f32")
        out.append({"image": path, "size": [width, height], "dump": dump(rgba, target),
                    "file_format": image.file_format, "is_float": bool(image.is_float)})
        bpy.data.images.remove(image)
    return {"images": out}


def write_images(job: Json) -> Json:
    """Images from raw RGBA float32 pixels (for tests and calibration)."""
    for item in job["images"]:
        pixels = array.array("f")
        with open(item["dump"], "rb") as f:
            pixels.frombytes(f.read())
        save_pixels(pixels, item["size"], item["format"], item["out"])
    return {"images": [item["out"] for item in job["images"]]}


def benchmark(job: Json) -> Json:
    """Seconds to render a small built-in scene (startup not counted)."""
    build_scene(job)
    scene = bpy.context.scene
    configure(scene, {**job, "format": "PNG"}, None)
    path = os.path.join(job["out_dir"], "benchmark.png")
    started = time.monotonic()
    render_frame(scene, job.get("frame", 1), path)
    seconds = time.monotonic() - started
    os.remove(path)
    return {"seconds": seconds}


def demo_scene(job: Json) -> Json:
    """A small animated scene, built from scratch: for tests, calibration,
    the benchmark and trying the app without a scene of one's own."""
    build_scene(job)
    path = job["out"]
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=True)
    return {"out": path}


def build_scene(job: Json) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = job.get("samples", 16)
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = job.get("adaptive", False)
    scene.render.resolution_x, scene.render.resolution_y = job.get("resolution", [64, 64])
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = job.get("frames", [1, 10])
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.06, 0.08)
    scene.world = world

    def material(name: str, colour: tuple[float, float, float], roughness: float) -> Any:
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = roughness
        return mat

    def add(op: Callable[..., Any], mat: Any, **kwargs: Any) -> Any:
        op(**kwargs)
        obj = bpy.context.object
        obj.data.materials.append(mat)
        return obj

    add(bpy.ops.mesh.primitive_plane_add, material("floor", (0.6, 0.6, 0.55), 0.6), size=12)
    cube = add(bpy.ops.mesh.primitive_cube_add, material("red", (0.8, 0.1, 0.08), 0.3),
               size=1.6, location=(-0.8, 0, 0.8))
    sphere = add(bpy.ops.mesh.primitive_uv_sphere_add, material("glossy", (0.2, 0.4, 0.9), 0.05),
                 radius=0.7, location=(1.2, 0.6, 0.7), segments=24, ring_count=12)
    first, last = scene.frame_start, scene.frame_end
    cube.rotation_euler = (0, 0, 0)
    cube.keyframe_insert("rotation_euler", frame=first)
    cube.rotation_euler = (0, 0, math.radians(120))
    cube.keyframe_insert("rotation_euler", frame=last)
    sphere.keyframe_insert("location", frame=first)
    sphere.location = (1.2, -1.4, 1.6)
    sphere.keyframe_insert("location", frame=last)
    bpy.ops.object.light_add(type="AREA", location=(2.5, -2.5, 4.5))
    light = bpy.context.object
    light.data.energy = 600 if job.get("variant") != "noisy" else 250
    light.data.size = 1.5 if job.get("variant") != "noisy" else 0.2
    light.rotation_euler = (math.radians(35), 0, math.radians(45))
    bpy.ops.object.camera_add(location=(6.5, -6.5, 4.6),
                              rotation=(math.radians(63), 0, math.radians(45)))
    camera = bpy.context.object
    scene.camera = camera
    # The camera moves: every pixel differs from one frame to the next.
    camera.keyframe_insert("location", frame=first)
    camera.location = (5.0, -7.6, 3.8)
    camera.keyframe_insert("location", frame=last)


COMMANDS: dict[str, Callable[[Json], Json]] = {
    "inspect": inspect,
    "render": render,
    "verify": verify,
    "merge": merge,
    "dump": dump_images,
    "write": write_images,
    "benchmark": benchmark,
    "demo_scene": demo_scene,
}


class UserError(Exception):
    """A problem with the inputs (not with Blender or this script)."""


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    try:
        result = COMMANDS[job["command"]](job)
    except UserError as exc:
        write_json(job["result"], {"error": str(exc), "kind": "input"})
        sys.exit(1)
    except BaseException as exc:
        write_json(job["result"], {"error": f"{type(exc).__name__}: {exc}", "kind": "internal",
                                   "traceback": traceback.format_exc()})
        raise
    write_json(job["result"], result)


if __name__ == "__main__":
    main()
