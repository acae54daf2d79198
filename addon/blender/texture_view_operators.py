"""Camera views of a texture's object (texture_views.py): add one from a camera, generate them all, bake their
results back into the texture; the views' list."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..spec_builder import InputError
from . import image_jobs
from .lists import ListSpec, list_row, register_list
from .operators import start_job
from .owners import object_texture
from .texture_views import add_view, bake_views, latest_result

VIEW_SIZES = [(str(side), f"{side} px", f"The view's longer side: {side} pixels") for side in (256, 512, 1024)]


def _texture_with_object(context: bpy.types.Context) -> bpy.types.Image | None:
    texture = object_texture(context)
    return texture if texture is not None and texture.regia.texture_object is not None else None


class REGIA_OT_texture_view_add(bpy.types.Operator):
    """Render the scene from a camera and make it a view of the texture: each material slot the camera sees is a
    region with the slot's guides, the render's outline guides the shapes. Generate it, then Bake Views"""

    bl_idname = "regia.texture_view_add"
    bl_label = "Add Camera View"
    bl_options = {"REGISTER", "UNDO"}

    camera: StringProperty(name="Camera", description="The camera to see the object from (empty: the scene's)")
    size: EnumProperty(name="Size", items=VIEW_SIZES, default="512", description="The view image's longer side")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if _texture_with_object(context) is None:
            cls.poll_message_set("Make the object's texture first (New Texture)")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self.camera and context.scene.camera is not None:
            self.camera = context.scene.camera.name
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop_search(self, "camera", bpy.data, "objects", icon="CAMERA_DATA")
        layout.prop(self, "size")

    def execute(self, context: bpy.types.Context) -> set[str]:
        camera = bpy.data.objects.get(self.camera) if self.camera else context.scene.camera
        if camera is None or camera.type != "CAMERA":
            self.report({"ERROR"}, f"'{self.camera or 'the scene'}' has no camera: pick a camera object")
            return {"CANCELLED"}
        try:
            view = add_view(_texture_with_object(context), camera, int(self.size))
        except (InputError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        seen = len(view.regia.regions)
        self.report({"INFO"}, f"Regia: view '{view.name}', {seen} material slot{'s' if seen != 1 else ''} in sight")
        return {"FINISHED"}


class REGIA_OT_texture_views_generate(bpy.types.Operator):
    """Generate every camera view of the texture that is not running, each with its own regions and guides"""

    bl_idname = "regia.texture_views_generate"
    bl_label = "Generate Views"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        texture = object_texture(context)
        if texture is None or not texture.regia_views:
            cls.poll_message_set("Add a camera view first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        started = 0
        for view in object_texture(context).regia_views:
            if view.image is None or image_jobs.is_running(view.image):
                continue
            level, message = start_job(view.image)
            if level != "INFO":
                self.report({"ERROR"}, f"View '{view.image.name}': {message}")
                continue
            started += 1
        if not started:
            return {"CANCELLED"}
        self.report({"INFO"}, f"Regia: generating {started} view{'s' if started != 1 else ''}")
        return {"FINISHED"}


class REGIA_OT_texture_bake_views(bpy.types.Operator):
    """Project the views' latest results back into the texture: only texels a camera sees, weighted by how
    squarely it sees them; the rest keep the texture's latest colors. A new image, put into the materials"""

    bl_idname = "regia.texture_bake_views"
    bl_label = "Bake Views"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        texture = _texture_with_object(context)
        if texture is None or not any(v.image is not None and latest_result(v.image) for v in texture.regia_views):
            cls.poll_message_set("Generate a camera view first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            result, seen, notes = bake_views(_texture_with_object(context))
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Regia: baked '{result.name}': the cameras saw {seen:.0%} of the object's texels")
        return {"FINISHED"}


@list_row("RegiaTextureView")
def _view_row(layout: bpy.types.UILayout, data: object, view: bpy.types.PropertyGroup) -> None:
    image = view.image
    camera = view.camera.name if view.camera is not None else "(no camera)"
    running = image is not None and image_jobs.is_running(image)
    done = image is not None and latest_result(image) is not None
    icon = "TIME" if running else "CHECKMARK" if done else "CAMERA_DATA"
    layout.label(text=f"{camera}: {image.name if image else '(deleted)'}", icon=icon)


register_list("TEXTURE_VIEWS", ListSpec(
    "camera view", object_texture, "regia_views", "regia_active_view", missing="Make the object's texture first",
    remove_note="its image stays in the file",
))  # fmt: skip

CLASSES = (REGIA_OT_texture_view_add, REGIA_OT_texture_views_generate, REGIA_OT_texture_bake_views)
