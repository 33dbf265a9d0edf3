-- Reaper action: split the selected item into stems with Continuo, each stem on a new track at the item's start.
-- Needs `continuo serve` running. See clients/reaper/README.md.
local here = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
dofile(here .. "continuo_actions.lua").run("stems")
