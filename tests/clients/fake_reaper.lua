-- A stand-in for Reaper's `reaper` table: records the calls the Continuo actions make, answers from FAKE.
-- Run: lua5.4 fake_reaper.lua <clients/reaper dir> <op> <file with the CLI's canned output> <exit code>
local dir, op, canned, exit_code = arg[1], arg[2], arg[3], arg[4]
local handle = assert(io.open(canned, "rb"))
local output = handle:read("a")
handle:close()
local tracks, calls = 0, {}
local function record(...) calls[#calls + 1] = table.concat({ ... }, "\t") end
reaper = {
  GetSelectedMediaItem = function() return "item" end,
  GetActiveTake = function() return "take" end,
  TakeIsMIDI = function() return false end,
  GetMediaItemTake_Source = function() return "source" end,
  GetMediaSourceFileName = function() return "/Users/me/My Loops/it's a loop.wav" end,
  GetMediaItemInfo_Value = function(_, key) return ({ D_POSITION = 2.0, D_LENGTH = 6.0 })[key] end,
  TimeMap_GetTimeSigAtTime = function() return 3, 4, 92.5 end,
  GetOS = function() return "OSX64" end,
  ExecProcess = function(line, timeout) record("ExecProcess", line, timeout); return exit_code .. "\n" .. output end,
  ShowMessageBox = function(text) record("ShowMessageBox", text) end,
  CountTracks = function() return tracks end,
  InsertTrackAtIndex = function(index) tracks = tracks + 1; record("InsertTrackAtIndex", index) end,
  GetTrack = function(_, index) return "track" .. index end,
  GetSetMediaTrackInfo_String = function(track, key, value) record("TrackName", track, value) end,
  SetOnlyTrackSelected = function(track) record("SetOnlyTrackSelected", track) end,
  SetEditCurPos = function(position) record("SetEditCurPos", string.format("%.3f", position)) end,
  InsertMedia = function(file, mode) record("InsertMedia", file, mode) end,
  Undo_BeginBlock = function() record("Undo_BeginBlock") end,
  Undo_EndBlock = function(name) record("Undo_EndBlock", name) end,
  UpdateArrange = function() end,
}
dofile(dir .. "/continuo_actions.lua").run(op)
for _, line in ipairs(calls) do print(line) end
