-- continuo_actions.lua: what Continuo's two Reaper actions do, with Reaper's API (`reaper`). The pure part (the
-- command line, reading the CLI's JSON lines) is continuo_lib.lua.
--
-- run(action): the selected item's source file, the project's tempo and time signature at the item, sent to
-- `continuo continue ... --json` ("continue"), `continuo stems ... --json` ("stems") or `continuo stems ... --midi
-- --json` ("stems-midi": each stem's .mid too, inserted as a MIDI item on its own new track); Reaper waits for the
-- CLI (a progress bar is not possible inside a blocking ReaScript call: the CLI's own timeout applies); then each
-- output goes on a new track: a continuation at the item's end, stems at the item's start (they line up with it).
local here = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local lib = dofile(here .. "continuo_lib.lua")
local M = { lib = lib }

M.settings = { bars = 4, stems = "drums,bass,other,vocals", port = 9000 }

local function message(text)
  reaper.ShowMessageBox(text, "Continuo", 0)
end

local function selected_source()
  local item = reaper.GetSelectedMediaItem(0, 0)
  if not item then return nil, "Select an audio item first." end
  local take = reaper.GetActiveTake(item)
  if not take or reaper.TakeIsMIDI(take) then return nil, "The selected item has no audio take." end
  local path = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take), "")
  if not path or path == "" then return nil, "The selected item's take has no source file." end
  local start = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  return { item = item, path = path, start = start, finish = start + reaper.GetMediaItemInfo_Value(item, "D_LENGTH") }
end

local function insert_on_new_track(file, position, name)
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "Continuo " .. name, true)
  reaper.SetOnlyTrackSelected(track)
  reaper.SetEditCurPos(position, false, false)
  reaper.InsertMedia(file, 0)  -- 0: on the selected track at the edit cursor
end

function M.run(action)
  local op, midi = action, false
  if action == "stems-midi" then op, midi = "stems", true end  -- stems, and each stem's notes as a MIDI item
  local source, problem = selected_source()
  if not source then return message(problem) end
  local beats_per_bar, beat_unit, bpm = reaper.TimeMap_GetTimeSigAtTime(0, source.start)
  local windows = reaper.GetOS():match("^Win") ~= nil
  local command = lib.build_command {
    op = op, input = source.path, bars = M.settings.bars, stems = M.settings.stems, port = M.settings.port, midi = midi,
    bpm = bpm, beats_per_bar = beats_per_bar, beat_unit = beat_unit, windows = windows,
  }
  local result = reaper.ExecProcess(lib.exec_line(command, windows), 0)  -- 0: wait until it ends
  if not result then return message("Could not run: " .. command) end
  local code, output = result:match("^(%-?%d+)\n?(.*)$")
  local _, outputs, finish = lib.read_events(output or "")
  if not finish.ok then
    return message(string.format("Continuo: %s (exit %s)\n%s\n\nCommand: %s", finish.code or "error",
                                 code or "?", finish.message or output or "", command))
  end
  local position = op == "stems" and source.start or source.finish
  reaper.Undo_BeginBlock()
  for _, out in ipairs(outputs) do
    insert_on_new_track(lib.file_to_insert(out), position, out.name)
  end
  reaper.UpdateArrange()
  reaper.Undo_EndBlock("Continuo " .. op .. " (" .. #outputs .. " file(s))", -1)
  return outputs
end

return M
