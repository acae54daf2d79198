"""Material wiring in headless bpy (run by tests/test_material_wiring.py): a generated texture wired into a
material's Base Color next to what was there, put back, wired twice, into a material with no nodes, refused for
an Emission material, and undone. argv: the extension zip. Prints `REGIA-RESULT {json}` lines, then REGIA-OK."""

from __future__ import annotations

import importlib
import json
import sys

import bpy

ZIP = sys.argv[1]
PACKAGE = "bl_ext.user_default.regia"


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def links_of(material: bpy.types.Material) -> list[list[str]]:
    return sorted(
        [link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier]
        for link in material.node_tree.links
    )


def base_source(material: bpy.types.Material) -> str | None:
    links = material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].links
    return links[0].from_node.name if links else None


def textured_material(name: str) -> tuple[bpy.types.Material, bpy.types.Image]:
    """A Principled material whose Base Color is fed by an old Image Texture node, left of the BSDF where a new
    node would go first."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # 4.2; 5.0 makes the tree with the material (and deprecates use_nodes)
        material.use_nodes = True
    tree = material.node_tree
    bsdf = tree.nodes["Principled BSDF"]
    old = tree.nodes.new("ShaderNodeTexImage")
    old.name = "Old Texture"
    old.image = bpy.data.images.new(f"{name} old", 8, 8)
    old.location = (bsdf.location.x - 300, bsdf.location.y)
    tree.links.new(old.outputs["Color"], bsdf.inputs["Base Color"])
    return material, old.image


def rect(node: bpy.types.Node, height: float) -> tuple[float, float, float, float]:
    return node.location.x, node.location.y - height, node.location.x + node.width, node.location.y


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def first_wire(wiring: object) -> None:
    material, old_image = textured_material("Wood")
    tree = material.node_tree
    new_image = bpy.data.images.new("Wood regia", 16, 16)
    node = wiring.wire_texture(material, new_image, "Detail")
    bsdf, old, uv = tree.nodes["Principled BSDF"], tree.nodes["Old Texture"], node.inputs["Vector"].links[0].from_node
    emit(
        phase="wire",
        base=base_source(material),
        node=node.name,
        label=node.label,
        image=node.image.name,
        interpolation=node.interpolation,
        extension=node.extension,
        old_image=old.image.name,
        old_image_exists=old_image.name in bpy.data.images,
        old_users=old_image.users,
        uv_type=uv.type,
        uv_map=uv.uv_map,
        active=tree.nodes.active.name,
        selected=[n.name for n in tree.nodes if n.select],
        previous=[node.get("regia_previous_node"), node.get("regia_previous_socket")],
        left_of_bsdf=node.location.x + node.width <= bsdf.location.x and uv.location.x + uv.width <= node.location.x,
        clear_of_old=not overlaps(rect(node, 250), rect(old, 250)) and not overlaps(rect(uv, 100), rect(old, 250)),
        current=getattr(wiring.current_texture(material), "name", None),
        regia=[n.name for n in wiring.regia_nodes(material)],
    )
    restored = wiring.restore_previous(material)
    emit(
        phase="restore",
        restored=restored,
        base=base_source(material),
        base_socket=bsdf.inputs["Base Color"].links[0].from_socket.identifier,
        regia_kept=node.name in tree.nodes,
        current=getattr(wiring.current_texture(material), "name", None),
        plain=wiring.restore_previous(bpy.data.materials.new("Untouched")),
    )
    tree.nodes.remove(old)  # the artist deletes what fed Base Color: restoring it must say so, not crash
    try:
        wiring.restore_previous(material)
        emit(phase="restore_gone", message=None)
    except ValueError as error:
        emit(phase="restore_gone", message=str(error))


def second_wire(wiring: object) -> None:
    material, _ = textured_material("Stone")
    tree = material.node_tree
    first = wiring.wire_texture(material, bpy.data.images.new("Stone 1", 16, 16))
    count = len(tree.nodes)
    second = wiring.wire_texture(material, bpy.data.images.new("Stone 2", 16, 16))
    again = wiring.wire_texture(material, second.image)  # the same image again: nothing added
    emit(
        phase="second",
        nodes_added=len(tree.nodes) - count,
        regia=[n.name for n in wiring.regia_nodes(material)],
        first=first.name,
        second=second.name,
        base=base_source(material),
        previous=second.get("regia_previous_node"),
        again=again.name,
        after_again=len(tree.nodes) - count,
        first_image=first.image.name,
        uv_nodes=sum(n.type == "UVMAP" for n in tree.nodes),
        clear=not overlaps(rect(second, 250), rect(first, 250)),
    )
    wiring.restore_previous(material)
    emit(phase="second_restore", base=base_source(material), current=wiring.current_texture(material).name)


def no_nodes(wiring: object) -> None:
    material = bpy.data.materials.new("Plain")
    had_tree = material.node_tree is not None
    node = wiring.wire_texture(material, bpy.data.images.new("Plain regia", 16, 16))
    bsdf = material.node_tree.nodes["Principled BSDF"]
    wired = base_source(material)
    default = list(bsdf.inputs["Base Color"].default_value)
    restored = wiring.restore_previous(material)
    emit(
        phase="no_nodes",
        had_tree=had_tree,
        wired=wired,
        node=node.name,
        previous=node.get("regia_previous_node"),
        restored=restored,
        after_restore=base_source(material),
        default_kept=list(bsdf.inputs["Base Color"].default_value) == default,
        regia_kept=node.name in material.node_tree.nodes,
    )


def refused(wiring: object) -> None:
    material = bpy.data.materials.new("Glow")
    if material.node_tree is None:
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.remove(tree.nodes["Principled BSDF"])
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(emission.outputs["Emission"], tree.nodes["Material Output"].inputs["Surface"])
    before = len(tree.nodes)
    messages = []
    try:
        wiring.wire_texture(material, bpy.data.images.new("Glow regia", 16, 16))
    except ValueError as error:
        messages.append(str(error))
    bare = bpy.data.materials.new("Bare")
    if bare.node_tree is None:
        bare.use_nodes = True
    bare.node_tree.nodes.remove(bare.node_tree.nodes["Material Output"])
    try:
        wiring.wire_texture(bare, bpy.data.images.new("Bare regia", 16, 16))
    except ValueError as error:
        messages.append(str(error))
    emit(phase="refused", messages=messages, added=len(tree.nodes) - before, current=wiring.current_texture(material))


def undone(wiring: object) -> None:
    material, _ = textured_material("Undo")
    new_image = bpy.data.images.new("Undo regia", 16, 16)
    before = links_of(material)
    count = len(material.node_tree.nodes)
    assert bpy.ops.ed.undo_push(message="before wiring") == {"FINISHED"}
    wiring.wire_texture(material, new_image, "UVMap")
    wired = links_of(material)
    assert bpy.ops.ed.undo_push(message="Regia: wire texture") == {"FINISHED"}  # what the operator's UNDO flag does
    result = bpy.ops.ed.undo()
    material = bpy.data.materials["Undo"]  # undo rebuilt the data: old references are stale
    emit(
        phase="undo",
        result=sorted(result),
        before=before,
        wired=wired,
        after=links_of(material),
        nodes_added=len(material.node_tree.nodes) - count,
        old_image=material.node_tree.nodes["Old Texture"].image.name,
        regia=len(wiring.regia_nodes(material)),
    )


def main() -> None:
    assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True) == {
        "FINISHED"
    }
    wiring = importlib.import_module(f"{PACKAGE}.addon.blender.material_wiring")
    first_wire(wiring)
    second_wire(wiring)
    no_nodes(wiring)
    refused(wiring)
    undone(wiring)
    print("REGIA-OK")


main()
