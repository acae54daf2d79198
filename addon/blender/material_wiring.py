"""Wire a generated texture into a material: a new Image Texture node feeding the Principled BSDF's Base Color.

Non-destructive: nothing already in the tree is removed or changed but the one link into Base Color, and the new
node records (as custom properties) which node and socket fed Base Color before, so `restore_previous` can put it
back. No bpy.ops here: the calling operator's UNDO flag makes the whole change one undo step.
"""

from __future__ import annotations

import bpy

LABEL = "Regia Texture"
UV_LABEL = "Regia UV"
# Custom properties on Regia's nodes. Nodes are recorded by name (unique in a tree, kept by undo and saving).
KEY_TEXTURE = "regia_texture"  # the order of Regia's texture nodes in this tree: 1, 2, ...
KEY_TARGET = "regia_target"  # the Principled BSDF it feeds
KEY_PREVIOUS_NODE = "regia_previous_node"  # what fed Base Color before ("" when nothing did)
KEY_PREVIOUS_SOCKET = "regia_previous_socket"  # that node's output socket, by identifier
KEY_UV_MAP = "regia_uv_map"  # the UV map asked for ("" for the mesh's active one)
KEY_UV_FOR = "regia_uv_for"  # on a UV Map node: the Regia texture node it feeds
BASE_COLOR = "Base Color"
GAP = 40.0  # between nodes, in node-editor units
_OUTPUT_TARGETS = ("ALL", "EEVEE", "CYCLES")
# Heights of nodes never drawn (headless, or an editor not opened yet): their `dimensions` are zero.
_TEXTURE_HEIGHT = 280.0
_UV_HEIGHT = 110.0
_EXTRA_HEIGHT = {"TEX_IMAGE": 150.0, "TEX_ENVIRONMENT": 150.0}

Rect = tuple[float, float, float, float]  # left, bottom, right, top


def regia_nodes(material: bpy.types.Material) -> list[bpy.types.ShaderNode]:
    """Regia's Image Texture nodes in the material, oldest first."""
    tree = material.node_tree
    if tree is None:
        return []
    return sorted((n for n in tree.nodes if KEY_TEXTURE in n), key=lambda n: int(n[KEY_TEXTURE]))


def latest_node(material: bpy.types.Material) -> bpy.types.ShaderNode | None:
    nodes = regia_nodes(material)
    return nodes[-1] if nodes else None


def current_texture(material: bpy.types.Material) -> bpy.types.Image | None:
    """The Regia image feeding the surface's Base Color now (None when something else, or nothing, does)."""
    try:
        bsdf = surface_bsdf(material)
    except ValueError:
        return None
    node = _base_color_source(bsdf)
    return node.image if node is not None and KEY_TEXTURE in node else None


def surface_bsdf(material: bpy.types.Material) -> bpy.types.ShaderNode:
    """The Principled BSDF linked into the active Material Output's Surface; a ValueError in the artist's words
    when there is none."""
    what = f"material '{material.name}'"
    keep = "or pick Keep for this slot"
    tree = material.node_tree
    output = _active_output(tree) if tree is not None else None
    if output is None:
        raise ValueError(f"{what} has no Material Output node: add one with a Principled BSDF, {keep}")
    links = output.inputs["Surface"].links
    if not links:
        raise ValueError(f"{what} has nothing in its Material Output's Surface: link a Principled BSDF to it, {keep}")
    shader = links[0].from_node
    if shader.type != "BSDF_PRINCIPLED":
        raise ValueError(
            f"{what} has no Principled BSDF on its Material Output (its Surface is '{shader.name}'): add one, {keep}"
        )
    return shader


def wire_texture(material: bpy.types.Material, image: bpy.types.Image, uv_map: str = "") -> bpy.types.ShaderNode:
    """Add a new Image Texture node for `image` feeding the surface's Base Color (through a UV Map node for
    `uv_map` when given) and make it the active node; returns it. When that image already feeds Base Color through
    a Regia node with the same UV map, returns that node and adds nothing."""
    if image is None:
        raise ValueError(f"material '{material.name}': there is no texture image to wire in: generate it again")
    if material.library is not None:
        raise ValueError(
            f"material '{material.name}' is linked from '{material.library.filepath}' and cannot be edited here: "
            "make it local, or pick Keep for this slot"
        )
    _ensure_nodes(material)
    bsdf = surface_bsdf(material)
    base = bsdf.inputs[BASE_COLOR]
    current = _base_color_source(bsdf)
    if _is_regia_wiring(current, image, uv_map):
        _make_active(material.node_tree, current)
        return current
    tree = material.node_tree
    existing = list(tree.nodes)
    node = _new_texture_node(tree, image)
    node[KEY_TEXTURE] = _next_order(material)
    node[KEY_TARGET] = bsdf.name
    node[KEY_PREVIOUS_NODE] = base.links[0].from_node.name if base.links else ""
    node[KEY_PREVIOUS_SOCKET] = base.links[0].from_socket.identifier if base.links else ""
    node[KEY_UV_MAP] = uv_map
    uv_node = _new_uv_node(tree, node, uv_map) if uv_map else None
    _place(node, uv_node, bsdf, existing)
    tree.links.new(node.outputs["Color"], base)  # replaces the old link: an input takes one
    _make_active(tree, node)
    return node


def restore_previous(material: bpy.types.Material) -> bool:
    """Re-link what fed Base Color before Regia's most recent node (or leave Base Color unlinked, at its own
    colour, when nothing did). The Regia node stays in the tree. False when the material has no Regia node."""
    node = latest_node(material)
    if node is None:
        return False
    tree = material.node_tree
    bsdf = tree.nodes.get(node.get(KEY_TARGET, ""))
    if bsdf is None or BASE_COLOR not in bsdf.inputs:
        raise ValueError(
            f"material '{material.name}': the Principled BSDF that '{node.name}' fed is gone: "
            "link its Base Color by hand"
        )
    base = bsdf.inputs[BASE_COLOR]
    name = node.get(KEY_PREVIOUS_NODE, "")
    if not name:
        for link in list(base.links):
            tree.links.remove(link)
        return True
    source = tree.nodes.get(name)
    socket = _output_socket(source, node.get(KEY_PREVIOUS_SOCKET, "")) if source is not None else None
    if socket is None:
        raise ValueError(
            f"material '{material.name}': the node '{name}' that fed Base Color before Regia is gone or changed: "
            "link Base Color by hand"
        )
    tree.links.new(socket, base)
    _make_active(tree, source)
    return True


def _ensure_nodes(material: bpy.types.Material) -> None:
    # 4.2: a new material has no tree until use_nodes; 5.0 always has one and deprecates the flag (reading it warns).
    if material.node_tree is None or (bpy.app.version < (5, 0, 0) and not material.use_nodes):
        material.use_nodes = True


def _active_output(tree: bpy.types.NodeTree) -> bpy.types.ShaderNode | None:
    for target in _OUTPUT_TARGETS:
        output = tree.get_output_node(target)
        if output is not None:
            return output
    return None


def _base_color_source(bsdf: bpy.types.ShaderNode) -> bpy.types.ShaderNode | None:
    links = bsdf.inputs[BASE_COLOR].links
    return links[0].from_node if links else None


def _is_regia_wiring(node: bpy.types.Node | None, image: bpy.types.Image, uv_map: str) -> bool:
    return node is not None and KEY_TEXTURE in node and node.image == image and node.get(KEY_UV_MAP, "") == uv_map


def _output_socket(node: bpy.types.Node, identifier: str) -> bpy.types.NodeSocket | None:
    return next((s for s in node.outputs if s.identifier == identifier), None)


def _next_order(material: bpy.types.Material) -> int:
    latest = latest_node(material)
    return int(latest[KEY_TEXTURE]) + 1 if latest is not None else 1


def _new_texture_node(tree: bpy.types.NodeTree, image: bpy.types.Image) -> bpy.types.ShaderNode:
    node = tree.nodes.new("ShaderNodeTexImage")
    node.name = node.label = LABEL  # Blender makes the name unique: "Regia Texture.001", ...
    node.image = image
    node.interpolation = "Linear"
    node.extension = "REPEAT"
    return node


def _new_uv_node(tree: bpy.types.NodeTree, texture: bpy.types.ShaderNode, uv_map: str) -> bpy.types.ShaderNode:
    node = tree.nodes.new("ShaderNodeUVMap")
    node.name = node.label = UV_LABEL
    node.uv_map = uv_map
    node[KEY_UV_FOR] = texture.name
    tree.links.new(node.outputs["UV"], texture.inputs["Vector"])
    return node


def _make_active(tree: bpy.types.NodeTree, node: bpy.types.Node) -> None:
    """Select only `node` and make it active, as adding a node in the Shader Editor does."""
    for other in tree.nodes:
        other.select = False
    node.select = True
    tree.nodes.active = node


def _place(
    texture: bpy.types.Node, uv_node: bpy.types.Node | None, bsdf: bpy.types.Node, existing: list[bpy.types.Node]
) -> None:
    """Put the new nodes in a row left of the BSDF, level with its top, moved down below anything they would
    overlap."""
    bsdf_x, top = _absolute(bsdf)
    texture_x = bsdf_x - GAP - texture.width
    left = texture_x - GAP - uv_node.width if uv_node is not None else texture_x
    height = _TEXTURE_HEIGHT
    rects = [_rect(n) for n in existing if n.type not in {"FRAME"}]
    for _ in range(len(rects) + 1):
        block = (left, top - height, bsdf_x - GAP, top)
        hits = [r for r in rects if _overlap(block, r)]
        if not hits:
            break
        top = min(r[1] for r in hits) - GAP
    texture.location = (texture_x, top)
    if uv_node is not None:
        uv_node.location = (left, top - (height - _UV_HEIGHT) / 2)


def _absolute(node: bpy.types.Node) -> tuple[float, float]:
    # A node in a frame stores its location relative to the frame; 4.4+ also gives location_absolute.
    if hasattr(node, "location_absolute"):
        return float(node.location_absolute[0]), float(node.location_absolute[1])
    x, y = float(node.location[0]), float(node.location[1])
    parent = node.parent
    while parent is not None:
        x, y = x + float(parent.location[0]), y + float(parent.location[1])
        parent = parent.parent
    return x, y


def _rect(node: bpy.types.Node) -> Rect:
    x, y = _absolute(node)
    width = max(float(node.width), float(node.dimensions[0]))
    return x, y - max(_estimated_height(node), float(node.dimensions[1])), x + width, y


def _estimated_height(node: bpy.types.Node) -> float:
    """A generous guess at a node's drawn height (a header, a row per shown socket, and its buttons)."""
    if node.hide:
        return 30.0
    rows = sum(1 for s in (*node.inputs, *node.outputs) if s.enabled and not s.hide)
    return 40.0 + 22.0 * rows + _EXTRA_HEIGHT.get(node.type, 0.0)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
