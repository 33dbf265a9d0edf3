-- Reaper action: continue the selected item with Continuo (4 bars at the project's tempo and time signature),
-- the result on a new track at the item's end. Needs `continuo serve` running. See clients/reaper/README.md.
local here = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
dofile(here .. "continuo_actions.lua").run("continue")
