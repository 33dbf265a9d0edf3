-- Reaper action: split the selected item into stems with Continuo, each stem and its notes (a .mid at the project's
-- tempo) on new tracks at the item's start. Needs `continuo serve` running. See clients/reaper/README.md.
local here = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
dofile(here .. "continuo_actions.lua").run("stems-midi")
