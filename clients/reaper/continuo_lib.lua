-- continuo_lib.lua: the pure part of Continuo's Reaper scripts (no `reaper` API here, so it runs and is
-- tested under a plain Lua 5.3/5.4: tests/clients/test_reaper.py).
--   build_command(opts)  -> the shell command line for `continuo continue|stems ... --json`
--   parse_json(text)     -> a Lua value from one JSON text (the CLI prints flat objects, one per line)
--   read_events(output)  -> the events, the output files and how the job ended, from the CLI's stdout
local M = {}

-- The continuo program: CONTINUO_BIN from the environment, else `continuo` on the PATH. Reaper started from
-- the Dock or Finder does not see your shell's PATH: set CONTINUO_BIN to the full path, e.g.
-- /Users/me/continuo/.venv/bin/continuo, or on Windows C:\Users\me\.local\bin\continuo.exe (pipx, uv).
M.default_program = "continuo"

function M.program()
  local from_env = os.getenv("CONTINUO_BIN")
  if from_env and from_env ~= "" then return from_env end
  return M.default_program
end

-- Quote one argument for the shell: POSIX single quotes, or Windows double quotes.
function M.shell_quote(text, windows)
  text = tostring(text)
  if windows then
    return '"' .. text:gsub('(\\*)"', '%1%1\\"'):gsub('(\\+)$', '%1%1') .. '"'
  end
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function number_text(value)
  if value == math.floor(value) then return string.format("%d", value) end
  return string.format("%.6g", value)
end

-- opts: op ("continue" or "stems"), input (path), bars, bpm, beats_per_bar, beat_unit, stems ("drums,bass"),
-- midi (stems: each stem's notes as a .mid too), key, port, program, windows. Returns one command line; the CLI prints one JSON object per event. No --job-id:
-- the CLI makes a fresh one for every run (cli-<op>-<date>-<time>-<8 random hex from the OS>), unique across
-- reboots and machines, so an action never gets an earlier take back (the daemon refuses a reused id with
-- another request: id_conflict).
function M.build_command(opts)
  assert(opts.op == "continue" or opts.op == "stems", "op must be continue or stems")
  assert(opts.input and opts.input ~= "", "an input file is needed")
  local q = function(text) return M.shell_quote(text, opts.windows) end
  local parts = { q(opts.program or M.program()), opts.op, q(opts.input), "--json" }
  if opts.op == "continue" and opts.bars then
    parts[#parts + 1] = "--bars " .. number_text(opts.bars)
  end
  if opts.op == "stems" and opts.stems then
    parts[#parts + 1] = "--stems " .. q(opts.stems)
  end
  if opts.op == "stems" and opts.midi then parts[#parts + 1] = "--midi" end
  if opts.bpm then parts[#parts + 1] = "--bpm " .. number_text(opts.bpm) end
  if opts.beats_per_bar and opts.beat_unit then
    parts[#parts + 1] = "--metre " .. number_text(opts.beats_per_bar) .. "/" .. number_text(opts.beat_unit)
  end
  if opts.key and opts.key ~= "" then parts[#parts + 1] = "--key " .. q(opts.key) end
  if opts.port then parts[#parts + 1] = "--port " .. number_text(opts.port) end
  return table.concat(parts, " ")
end

-- The line for reaper.ExecProcess, which runs a program with its arguments but no shell (arguments in double
-- quotes stay together): on macOS and Linux the command goes through /bin/sh -c so the single-quoted arguments
-- (paths with spaces) arrive whole; on Windows the command is run as it is (its arguments are double-quoted).
function M.exec_line(command, windows)
  if windows then return command end
  return '/bin/sh -c "' .. command .. '"'
end

-- A small JSON reader: objects, arrays, strings (with escapes, \u as UTF-8), numbers, true, false, null.
local function utf8_char(code)
  if utf8 and utf8.char then return utf8.char(code) end
  return "?"
end

function M.parse_json(text)
  local pos = 1
  local function fail(what) error(string.format("JSON: %s at character %d of %q", what, pos, text), 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function parse_string()
    pos = pos + 1
    local out = {}
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if simple[e] then
          out[#out + 1] = simple[e]; pos = pos + 2
        elseif e == "u" then
          local code = tonumber(text:sub(pos + 2, pos + 5), 16) or fail("bad \\u escape")
          pos = pos + 6
          if code >= 0xD800 and code <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local low = tonumber(text:sub(pos + 2, pos + 5), 16) or fail("bad \\u escape")
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            pos = pos + 6
          end
          out[#out + 1] = utf8_char(code)
        else
          fail("bad escape")
        end
      else
        local stop = text:find('["\\]', pos) or #text + 1
        out[#out + 1] = text:sub(pos, stop - 1)
        pos = stop
      end
    end
  end
  value = function()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local object = {}
      pos = pos + 1; skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return object end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local key = parse_string()
        skip()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        object[key] = value()
        skip()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "}" then return object end
        if sep ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local array = {}
      pos = pos + 1; skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return array end
      while true do
        array[#array + 1] = value()
        skip()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "]" then return array end
        if sep ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return parse_string()
    elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    else
      local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not number or number == "" then fail("unexpected " .. (c == "" and "end" or c)) end
      pos = pos + #number
      return tonumber(number) or fail("bad number " .. number)
    end
  end
  local result = value()
  skip()
  if pos <= #text then fail("trailing text") end
  return result
end

-- From the CLI's stdout: every event (lines that are not JSON are skipped), the outputs (name, path, daw_path,
-- seconds, bars), and the end: {ok = true, seed = ...} or {ok = false, code = ..., message = ...}.
function M.read_events(output)
  local events, outputs, finish = {}, {}, nil
  for line in output:gmatch("[^\r\n]+") do
    local ok, event = pcall(M.parse_json, line)
    if ok and type(event) == "table" and event.event then
      events[#events + 1] = event
      if event.event == "output" then
        outputs[#outputs + 1] = { name = event.name, path = event.path, seconds = event.seconds, bars = event.bars,
                                  daw_path = (event.daw_path ~= "" and event.daw_path) or nil }
      elseif event.event == "done" then
        finish = { ok = true, seed = event.seed, job_id = event.job_id }
      elseif event.event == "error" and (event.job_id ~= nil or event.code) then
        finish = { ok = false, code = event.code, message = event.message, job_id = event.job_id }
      end
    end
  end
  return events, outputs, finish or { ok = false, code = "no_reply", message = "the CLI printed no done or error" }
end

-- The file to put in the project: the DAW-friendly name when there is one, else the stable path.
function M.file_to_insert(output)
  return output.daw_path or output.path
end

return M
