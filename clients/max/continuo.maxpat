{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 6,
   "revision": 4,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   100.0,
   100.0,
   1500.0,
   900.0
  ],
  "bglocked": 0,
  "openinpresentation": 0,
  "default_fontsize": 12.0,
  "default_fontface": 0,
  "default_fontname": "Arial",
  "gridonopen": 1,
  "gridsize": [
   15.0,
   15.0
  ],
  "gridsnaponopen": 1,
  "objectsnaponopen": 1,
  "statusbarvisible": 2,
  "toolbarvisible": 1,
  "lefttoolbarpinned": 0,
  "toptoolbarpinned": 0,
  "righttoolbarpinned": 0,
  "bottomtoolbarpinned": 0,
  "toolbars_unpinned_last_save": 0,
  "tallnewobj": 0,
  "boxanimatetime": 200,
  "enablehscroll": 1,
  "enablevscroll": 1,
  "devicewidth": 0.0,
  "description": "Continuo: generate, continue, variations and stems from the Continuo daemon over OSC",
  "digest": "",
  "tags": "",
  "style": "",
  "subpatcher_template": "",
  "assistshowspatchername": 0,
  "boxes": [
   {
    "box": {
     "id": "obj-start",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      150.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "loadbang"
    }
   },
   {
    "box": {
     "id": "obj-drop",
     "maxclass": "dropfile",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      400.0,
      20.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-udpsend",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "udpsend 127.0.0.1 9000"
    }
   },
   {
    "box": {
     "id": "obj-udpreceive",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "udpreceive 9002"
    }
   },
   {
    "box": {
     "id": "obj-hello",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "/continuo/hello max 9002"
    }
   },
   {
    "box": {
     "id": "obj-ask-presets",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "/continuo/presets"
    }
   },
   {
    "box": {
     "id": "obj-events",
     "maxclass": "newobj",
     "numinlets": 26,
     "numoutlets": 26,
     "outlettype": [
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      ""
     ],
     "patching_rect": [
      20.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "route /continuo/adapters /continuo/analysis /continuo/beats /continuo/context /continuo/done /continuo/error /continuo/jam/chunk /continuo/jam/scheduled /continuo/jam/state /continuo/limits /continuo/models /continuo/output /continuo/partial /continuo/pong /continuo/presets /continuo/progress /continuo/queued /continuo/session /continuo/slot /continuo/status /continuo/storage /continuo/training /continuo/trash/job /continuo/trash/result /continuo/welcome"
    }
   },
   {
    "box": {
     "id": "obj-queued",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "int",
      "float"
     ],
     "patching_rect": [
      560.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s i f"
    }
   },
   {
    "box": {
     "id": "obj-queue-box",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      560.0,
      50.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-progress",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "float",
      ""
     ],
     "patching_rect": [
      700.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s f s"
    }
   },
   {
    "box": {
     "id": "obj-progress-box",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      700.0,
      50.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-stage-text",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      700.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-stage-box",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      700.0,
      110.0,
      150.0,
      22.0
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-error",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      860.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s s s"
    }
   },
   {
    "box": {
     "id": "obj-error-text",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      860.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-error-box",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      860.0,
      80.0,
      150.0,
      22.0
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-error-job",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      1000.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "t b s"
    }
   },
   {
    "box": {
     "id": "obj-error-job-keep",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1000.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "zl.reg"
    }
   },
   {
    "box": {
     "id": "obj-ack-error",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1000.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "pack max"
    }
   },
   {
    "box": {
     "id": "obj-done",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 4,
     "outlettype": [
      "",
      "int",
      "int",
      "float"
     ],
     "patching_rect": [
      1150.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s i i f"
    }
   },
   {
    "box": {
     "id": "obj-seed-box",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      1150.0,
      50.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-ack",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1000.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/ack"
    }
   },
   {
    "box": {
     "id": "obj-welcome",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "bang"
     ],
     "patching_rect": [
      200.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t b b"
    }
   },
   {
    "box": {
     "id": "obj-welcome-info",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 5,
     "outlettype": [
      "",
      "",
      "int",
      "",
      ""
     ],
     "patching_rect": [
      200.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "unpack s s i s s"
    }
   },
   {
    "box": {
     "id": "obj-clear-presets",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "clear"
    }
   },
   {
    "box": {
     "id": "obj-model-text",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "prepend set model:"
    }
   },
   {
    "box": {
     "id": "obj-model-box",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      200.0,
      150.0,
      22.0
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-preset-item",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      200.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "unpack s s"
    }
   },
   {
    "box": {
     "id": "obj-preset-listed",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      200.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t b s"
    }
   },
   {
    "box": {
     "id": "obj-preset-append",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      200.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "prepend append"
    }
   },
   {
    "box": {
     "id": "obj-preset-menu",
     "maxclass": "umenu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "",
      ""
     ],
     "patching_rect": [
      200.0,
      320.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-outputs",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 9,
     "outlettype": [
      "",
      "",
      "",
      "int",
      "int",
      "float",
      "float",
      "float",
      "float"
     ],
     "patching_rect": [
      1300.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s s s i i f f f f"
    }
   },
   {
    "box": {
     "id": "obj-output-list",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1300.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend append"
    }
   },
   {
    "box": {
     "id": "obj-output-menu",
     "maxclass": "umenu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "",
      ""
     ],
     "patching_rect": [
      1300.0,
      80.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-output-path",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1300.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "zl.reg"
    }
   },
   {
    "box": {
     "id": "obj-midi-skip",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      1300.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "sel mix-midi"
    }
   },
   {
    "box": {
     "id": "obj-audio-gate",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      1300.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "t b"
    }
   },
   {
    "box": {
     "id": "obj-log",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      400.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "print continuo"
    }
   },
   {
    "box": {
     "id": "obj-current-job",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1450.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "zl.reg"
    }
   },
   {
    "box": {
     "id": "obj-prompt",
     "keymode": 1,
     "maxclass": "textedit",
     "numinlets": 1,
     "numoutlets": 4,
     "outlettype": [
      "",
      "int",
      "",
      ""
     ],
     "patching_rect": [
      20.0,
      110.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-prompt-text",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      20.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "route text"
    }
   },
   {
    "box": {
     "id": "obj-prompt-symbol",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "tosymbol"
    }
   },
   {
    "box": {
     "id": "obj-bars",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      150.0,
      50.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-bars-float",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "float"
     ],
     "patching_rect": [
      150.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t f"
    }
   },
   {
    "box": {
     "id": "obj-count",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      260.0,
      20.0,
      150.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-path",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "int"
     ],
     "patching_rect": [
      400.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "conformpath slash boot"
    }
   },
   {
    "box": {
     "id": "obj-path-keep",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      400.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "t s"
    }
   },
   {
    "box": {
     "id": "obj-generate-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "Generate"
    }
   },
   {
    "box": {
     "id": "obj-continue-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "Continue"
    }
   },
   {
    "box": {
     "id": "obj-variations-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "Variations"
    }
   },
   {
    "box": {
     "id": "obj-stems-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "Stems"
    }
   },
   {
    "box": {
     "id": "obj-midi-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "MIDI"
    }
   },
   {
    "box": {
     "id": "obj-cancel-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      560.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "Cancel"
    }
   },
   {
    "box": {
     "id": "obj-generate-pack",
     "maxclass": "newobj",
     "numinlets": 4,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "pack max default piano 4."
    }
   },
   {
    "box": {
     "id": "obj-generate-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/generate"
    }
   },
   {
    "box": {
     "id": "obj-generate-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      560.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-generate-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      560.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-generate-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-generate-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      410.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-generate-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      560.0,
      440.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-generate-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      560.0,
      470.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-generate-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      560.0,
      500.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-generate-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      560.0,
      530.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-generate-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      560.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-generate-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      560.0,
      590.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-generate-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      560.0,
      620.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-continue-pack",
     "maxclass": "newobj",
     "numinlets": 4,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "pack max default none 4."
    }
   },
   {
    "box": {
     "id": "obj-continue-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/continue"
    }
   },
   {
    "box": {
     "id": "obj-continue-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      760.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-continue-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      760.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-continue-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-continue-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-continue-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      760.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-continue-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      760.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-continue-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      760.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-continue-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      760.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-continue-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-continue-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      760.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-continue-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      760.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-variations-pack",
     "maxclass": "newobj",
     "numinlets": 5,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "pack max default none 4 4."
    }
   },
   {
    "box": {
     "id": "obj-variations-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/variations"
    }
   },
   {
    "box": {
     "id": "obj-variations-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      960.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-variations-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      960.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-variations-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-variations-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-variations-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      960.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-variations-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      960.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-variations-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      960.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-variations-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      960.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-variations-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-variations-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      960.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-variations-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      960.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-stems-pack",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "pack max none drums,bass,other,vocals"
    }
   },
   {
    "box": {
     "id": "obj-stems-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/stems"
    }
   },
   {
    "box": {
     "id": "obj-stems-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      1160.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-stems-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      1160.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-stems-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-stems-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-stems-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      1160.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-stems-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1160.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-stems-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1160.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-stems-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1160.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-stems-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-stems-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-stems-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1160.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-midi-pack",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "pack max none mix"
    }
   },
   {
    "box": {
     "id": "obj-midi-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/midi"
    }
   },
   {
    "box": {
     "id": "obj-midi-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      1600.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-midi-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      1600.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-midi-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-midi-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-midi-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      1600.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-midi-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1600.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-midi-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1600.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-midi-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1600.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-midi-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-midi-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1600.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-midi-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1600.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-cancel-pack",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1450.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "pack max"
    }
   },
   {
    "box": {
     "id": "obj-cancel-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1450.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/cancel"
    }
   },
   {
    "box": {
     "id": "obj-context-pack",
     "maxclass": "newobj",
     "numinlets": 5,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "pack 120. 4 4 C 48000"
    }
   },
   {
    "box": {
     "id": "obj-context-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/context"
    }
   },
   {
    "box": {
     "id": "obj-context-beats",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "int"
     ],
     "patching_rect": [
      20.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "t b i"
    }
   },
   {
    "box": {
     "id": "obj-context-unit",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "int"
     ],
     "patching_rect": [
      20.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "t b i"
    }
   },
   {
    "box": {
     "id": "obj-context-key",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      20.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "t b s"
    }
   },
   {
    "box": {
     "id": "obj-context-rate",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "int"
     ],
     "patching_rect": [
      20.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "t b i"
    }
   },
   {
    "box": {
     "id": "obj-context-rate-source",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 4,
     "outlettype": [
      "int",
      "float",
      "int",
      "int"
     ],
     "patching_rect": [
      20.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "dspstate~"
    }
   },
   {
    "box": {
     "id": "obj-poll",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      150.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "metro 500"
    }
   },
   {
    "box": {
     "id": "obj-transport",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 9,
     "outlettype": [
      "int",
      "int",
      "float",
      "float",
      "float",
      "",
      "int",
      "float",
      ""
     ],
     "patching_rect": [
      150.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "transport"
    }
   },
   {
    "box": {
     "id": "obj-tempo",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "float"
     ],
     "patching_rect": [
      150.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "t f"
    }
   },
   {
    "box": {
     "id": "obj-metre",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      150.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "unpack i i"
    }
   },
   {
    "box": {
     "id": "obj-buffer-read",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1300.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "prepend replace"
    }
   },
   {
    "box": {
     "id": "obj-buffer",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "float",
      "bang"
     ],
     "patching_rect": [
      1300.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "buffer~ continuo-out"
    }
   },
   {
    "box": {
     "id": "obj-play-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      1450.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "Play"
    }
   },
   {
    "box": {
     "id": "obj-play-start",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1450.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "start"
    }
   },
   {
    "box": {
     "id": "obj-player",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "signal",
      "bang"
     ],
     "patching_rect": [
      1450.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "play~ continuo-out"
    }
   },
   {
    "box": {
     "id": "obj-dac",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 0,
     "patching_rect": [
      1450.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "ezdac~"
    }
   },
   {
    "box": {
     "id": "obj-jam-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      1750.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "Jam"
    }
   },
   {
    "box": {
     "id": "obj-jam-stop-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      1750.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "Jam Stop"
    }
   },
   {
    "box": {
     "id": "obj-jam-prompt-button",
     "maxclass": "textbutton",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      "int"
     ],
     "patching_rect": [
      1750.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "Jam Prompt"
    }
   },
   {
    "box": {
     "id": "obj-jam-pack",
     "maxclass": "newobj",
     "numinlets": 10,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "pack max piano bpm 120. beats_per_bar 4 clock host preset default"
    }
   },
   {
    "box": {
     "id": "obj-jam-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/jam/start"
    }
   },
   {
    "box": {
     "id": "obj-jam-ticks",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      1750.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-jam-random",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      1750.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "random 1000000"
    }
   },
   {
    "box": {
     "id": "obj-jam-ask-time",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "time"
    }
   },
   {
    "box": {
     "id": "obj-jam-ask-date",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-jam-date",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "list",
      "list",
      "int"
     ],
     "patching_rect": [
      1750.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "date"
    }
   },
   {
    "box": {
     "id": "obj-jam-hms",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1750.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-jam-ymd",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1750.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-jam-md",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      1750.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "unpack i i i"
    }
   },
   {
    "box": {
     "id": "obj-jam-year",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      410.0,
      150.0,
      22.0
     ],
     "text": "$3"
    }
   },
   {
    "box": {
     "id": "obj-jam-id",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      440.0,
      150.0,
      22.0
     ],
     "text": "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"
    }
   },
   {
    "box": {
     "id": "obj-jam-id-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1750.0,
      470.0,
      150.0,
      22.0
     ],
     "text": "t s s"
    }
   },
   {
    "box": {
     "id": "obj-jam-current",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1750.0,
      500.0,
      150.0,
      22.0
     ],
     "text": "zl.reg"
    }
   },
   {
    "box": {
     "id": "obj-jam-go",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      1750.0,
      530.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-jam-clear",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      560.0,
      150.0,
      22.0
     ],
     "text": "clear"
    }
   },
   {
    "box": {
     "id": "obj-jam-unready",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      590.0,
      150.0,
      22.0
     ],
     "text": "-1"
    }
   },
   {
    "box": {
     "id": "obj-jam-ready",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      620.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-jam-spare-zero",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      650.0,
      150.0,
      22.0
     ],
     "text": "0"
    }
   },
   {
    "box": {
     "id": "obj-jam-spare",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      680.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamspare"
    }
   },
   {
    "box": {
     "id": "obj-jam-poll-on",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1750.0,
      710.0,
      150.0,
      22.0
     ],
     "text": "1"
    }
   },
   {
    "box": {
     "id": "obj-jam-stop-pack",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1950.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "pack max"
    }
   },
   {
    "box": {
     "id": "obj-jam-stop-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1950.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/jam/stop"
    }
   },
   {
    "box": {
     "id": "obj-jam-prompt-pack",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1950.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "pack max prompt piano"
    }
   },
   {
    "box": {
     "id": "obj-jam-prompt-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1950.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/jam/control"
    }
   },
   {
    "box": {
     "id": "obj-jam-prompt-id",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      1950.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "zl.reg"
    }
   },
   {
    "box": {
     "id": "obj-jam-poll",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      2150.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "metro 100"
    }
   },
   {
    "box": {
     "id": "obj-jam-state",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 9,
     "outlettype": [
      "",
      "",
      "int",
      "float",
      "float",
      "int",
      "int",
      "int",
      ""
     ],
     "patching_rect": [
      2150.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "unpack s s i f f i i i s"
    }
   },
   {
    "box": {
     "id": "obj-jam-ended",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      ""
     ],
     "patching_rect": [
      2150.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "sel stopped failed"
    }
   },
   {
    "box": {
     "id": "obj-stop-bar",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2150.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-stop-at",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      2150.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "sel stopping"
    }
   },
   {
    "box": {
     "id": "obj-stop-steps",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      2150.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-stop-origin",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamorigin"
    }
   },
   {
    "box": {
     "id": "obj-stop-beats",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jambeats"
    }
   },
   {
    "box": {
     "id": "obj-stop-beat",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "expr $f1 + $f2 * $f3"
    }
   },
   {
    "box": {
     "id": "obj-stop-last",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "float",
      "float"
     ],
     "patching_rect": [
      2150.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "t b f f"
    }
   },
   {
    "box": {
     "id": "obj-stop-last-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamlast"
    }
   },
   {
    "box": {
     "id": "obj-stop-ready",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-stop-later",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "expr $f1 > $f2"
    }
   },
   {
    "box": {
     "id": "obj-stop-drop",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      2150.0,
      410.0,
      150.0,
      22.0
     ],
     "text": "sel 1"
    }
   },
   {
    "box": {
     "id": "obj-stop-unready",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      440.0,
      150.0,
      22.0
     ],
     "text": "-1"
    }
   },
   {
    "box": {
     "id": "obj-stop-unready-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      470.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-jam-unstop",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      500.0,
      150.0,
      22.0
     ],
     "text": "1000000000"
    }
   },
   {
    "box": {
     "id": "obj-jam-unstop-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      530.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamlast"
    }
   },
   {
    "box": {
     "id": "obj-jam-poll-off",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      560.0,
      150.0,
      22.0
     ],
     "text": "0"
    }
   },
   {
    "box": {
     "id": "obj-jam-clock",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 9,
     "outlettype": [
      "int",
      "int",
      "float",
      "float",
      "float",
      "",
      "int",
      "float",
      ""
     ],
     "patching_rect": [
      2150.0,
      590.0,
      150.0,
      22.0
     ],
     "text": "transport"
    }
   },
   {
    "box": {
     "id": "obj-jam-metre",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      2150.0,
      620.0,
      150.0,
      22.0
     ],
     "text": "unpack i i"
    }
   },
   {
    "box": {
     "id": "obj-jam-beat",
     "maxclass": "newobj",
     "numinlets": 5,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      650.0,
      150.0,
      22.0
     ],
     "text": "expr ($i1 - 1) * $i2 + ($i3 - 1) + $f4 / $f5"
    }
   },
   {
    "box": {
     "id": "obj-jam-beat-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "float"
     ],
     "patching_rect": [
      2150.0,
      680.0,
      150.0,
      22.0
     ],
     "text": "t b f"
    }
   },
   {
    "box": {
     "id": "obj-jam-bpm",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "float"
     ],
     "patching_rect": [
      2150.0,
      710.0,
      150.0,
      22.0
     ],
     "text": "f 120."
    }
   },
   {
    "box": {
     "id": "obj-jam-transport-pack",
     "maxclass": "newobj",
     "numinlets": 4,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      740.0,
      150.0,
      22.0
     ],
     "text": "pack 120. 0. 1 4"
    }
   },
   {
    "box": {
     "id": "obj-jam-transport-address",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2150.0,
      770.0,
      150.0,
      22.0
     ],
     "text": "prepend /continuo/jam/transport"
    }
   },
   {
    "box": {
     "id": "obj-chunk",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 11,
     "outlettype": [
      "",
      "int",
      "float",
      "float",
      "float",
      "int",
      "int",
      "",
      "",
      "float",
      "int"
     ],
     "patching_rect": [
      2350.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "unpack s i f f f i i s s f i"
    }
   },
   {
    "box": {
     "id": "obj-chunk-ours",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      2350.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "sel none"
    }
   },
   {
    "box": {
     "id": "obj-chunk-start",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2350.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-chunk-entry",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "pack 0 none"
    }
   },
   {
    "box": {
     "id": "obj-chunk-origin",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "expr $f2 - $f1 * $f3"
    }
   },
   {
    "box": {
     "id": "obj-chunk-origin-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamorigin"
    }
   },
   {
    "box": {
     "id": "obj-chunk-beats-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jambeats"
    }
   },
   {
    "box": {
     "id": "obj-chunk-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      2350.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "t b l"
    }
   },
   {
    "box": {
     "id": "obj-queue",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 4,
     "outlettype": [
      "",
      "",
      "",
      ""
     ],
     "patching_rect": [
      2350.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "coll continuo-jamq"
    }
   },
   {
    "box": {
     "id": "obj-chunk-bar",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "pack 0 0"
    }
   },
   {
    "box": {
     "id": "obj-jam-bar-text",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "prepend set bar/prompt"
    }
   },
   {
    "box": {
     "id": "obj-jam-bar-box",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2350.0,
      350.0,
      150.0,
      22.0
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-bar-line",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      2550.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "metro 1n @quantize 1n @active 1"
    }
   },
   {
    "box": {
     "id": "obj-bar-clock",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 9,
     "outlettype": [
      "int",
      "int",
      "float",
      "float",
      "float",
      "",
      "int",
      "float",
      ""
     ],
     "patching_rect": [
      2550.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "transport"
    }
   },
   {
    "box": {
     "id": "obj-bar-first-beat",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "expr ($i1 - 1) * $i2"
    }
   },
   {
    "box": {
     "id": "obj-bar-metre",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      2550.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "unpack i i"
    }
   },
   {
    "box": {
     "id": "obj-bar",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      2550.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "t i i"
    }
   },
   {
    "box": {
     "id": "obj-bar-ready",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "bang"
     ],
     "patching_rect": [
      2550.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "t i b"
    }
   },
   {
    "box": {
     "id": "obj-bar-ready-get",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-bar-is-ready",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2550.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "=="
    }
   },
   {
    "box": {
     "id": "obj-bar-play",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      2550.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "sel 1"
    }
   },
   {
    "box": {
     "id": "obj-bar-next",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2550.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "+ 4"
    }
   },
   {
    "box": {
     "id": "obj-play",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "bang"
     ],
     "patching_rect": [
      2550.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "t b b"
    }
   },
   {
    "box": {
     "id": "obj-play-unready",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "-1"
    }
   },
   {
    "box": {
     "id": "obj-play-unready-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-play-spare",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      410.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamspare"
    }
   },
   {
    "box": {
     "id": "obj-play-tee",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      2550.0,
      440.0,
      150.0,
      22.0
     ],
     "text": "t i i"
    }
   },
   {
    "box": {
     "id": "obj-play-flip",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2550.0,
      470.0,
      150.0,
      22.0
     ],
     "text": "== 0"
    }
   },
   {
    "box": {
     "id": "obj-play-flip-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2550.0,
      500.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamspare"
    }
   },
   {
    "box": {
     "id": "obj-play-which",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      ""
     ],
     "patching_rect": [
      2550.0,
      530.0,
      150.0,
      22.0
     ],
     "text": "sel 0 1"
    }
   },
   {
    "box": {
     "id": "obj-load-check",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "bang"
     ],
     "patching_rect": [
      2750.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "t i i b"
    }
   },
   {
    "box": {
     "id": "obj-load-last",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamlast"
    }
   },
   {
    "box": {
     "id": "obj-load-allowed",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "expr $f1 <= $f2"
    }
   },
   {
    "box": {
     "id": "obj-load-open",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "gate 1"
    }
   },
   {
    "box": {
     "id": "obj-load",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      2750.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "t i i i"
    }
   },
   {
    "box": {
     "id": "obj-load-key",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2750.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-load-remove",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "prepend remove"
    }
   },
   {
    "box": {
     "id": "obj-load-found",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      2750.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "t s b"
    }
   },
   {
    "box": {
     "id": "obj-load-retry",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2750.0,
      260.0,
      150.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-load-ready",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      290.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamready"
    }
   },
   {
    "box": {
     "id": "obj-load-spare",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2750.0,
      320.0,
      150.0,
      22.0
     ],
     "text": "v continuo-jamspare"
    }
   },
   {
    "box": {
     "id": "obj-load-gate-index",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      2750.0,
      350.0,
      150.0,
      22.0
     ],
     "text": "+ 1"
    }
   },
   {
    "box": {
     "id": "obj-load-gate",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      2750.0,
      380.0,
      150.0,
      22.0
     ],
     "text": "gate 2"
    }
   },
   {
    "box": {
     "id": "obj-load-which",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      2750.0,
      410.0,
      150.0,
      22.0
     ],
     "text": "t s b"
    }
   },
   {
    "box": {
     "id": "obj-load-A",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2950.0,
      20.0,
      150.0,
      22.0
     ],
     "text": "prepend replace"
    }
   },
   {
    "box": {
     "id": "obj-buffer-A",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "float",
      "bang"
     ],
     "patching_rect": [
      2950.0,
      50.0,
      150.0,
      22.0
     ],
     "text": "buffer~ continuo-jamA"
    }
   },
   {
    "box": {
     "id": "obj-start-A",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2950.0,
      80.0,
      150.0,
      22.0
     ],
     "text": "start"
    }
   },
   {
    "box": {
     "id": "obj-player-A",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "signal",
      "bang"
     ],
     "patching_rect": [
      2950.0,
      110.0,
      150.0,
      22.0
     ],
     "text": "play~ continuo-jamA"
    }
   },
   {
    "box": {
     "id": "obj-load-B",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2950.0,
      140.0,
      150.0,
      22.0
     ],
     "text": "prepend replace"
    }
   },
   {
    "box": {
     "id": "obj-buffer-B",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "float",
      "bang"
     ],
     "patching_rect": [
      2950.0,
      170.0,
      150.0,
      22.0
     ],
     "text": "buffer~ continuo-jamB"
    }
   },
   {
    "box": {
     "id": "obj-start-B",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      2950.0,
      200.0,
      150.0,
      22.0
     ],
     "text": "start"
    }
   },
   {
    "box": {
     "id": "obj-player-B",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "signal",
      "bang"
     ],
     "patching_rect": [
      2950.0,
      230.0,
      150.0,
      22.0
     ],
     "text": "play~ continuo-jamB"
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "destination": [
      "obj-hello",
      0
     ],
     "source": [
      "obj-start",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-hello",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-ask-presets",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-events",
      0
     ],
     "source": [
      "obj-udpreceive",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queued",
      0
     ],
     "source": [
      "obj-events",
      16
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queue-box",
      0
     ],
     "source": [
      "obj-queued",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-progress",
      0
     ],
     "source": [
      "obj-events",
      15
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-progress-box",
      0
     ],
     "source": [
      "obj-progress",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stage-text",
      0
     ],
     "source": [
      "obj-progress",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stage-box",
      0
     ],
     "source": [
      "obj-stage-text",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error",
      0
     ],
     "source": [
      "obj-events",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error-text",
      0
     ],
     "source": [
      "obj-error",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error-box",
      0
     ],
     "source": [
      "obj-error-text",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error-job",
      0
     ],
     "source": [
      "obj-error",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error-job-keep",
      1
     ],
     "source": [
      "obj-error-job",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-error-job-keep",
      0
     ],
     "source": [
      "obj-error-job",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-ack-error",
      0
     ],
     "source": [
      "obj-error-job-keep",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-done",
      0
     ],
     "source": [
      "obj-events",
      4
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-seed-box",
      0
     ],
     "source": [
      "obj-done",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-ack",
      0
     ],
     "source": [
      "obj-done",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-ack",
      0
     ],
     "source": [
      "obj-ack-error",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-ack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-welcome",
      0
     ],
     "source": [
      "obj-events",
      24
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-welcome-info",
      0
     ],
     "source": [
      "obj-events",
      24
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-model-text",
      0
     ],
     "source": [
      "obj-welcome-info",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-model-box",
      0
     ],
     "source": [
      "obj-model-text",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-clear-presets",
      0
     ],
     "source": [
      "obj-welcome",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-ask-presets",
      0
     ],
     "source": [
      "obj-welcome",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-preset-item",
      0
     ],
     "source": [
      "obj-events",
      14
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-preset-listed",
      0
     ],
     "source": [
      "obj-preset-item",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-preset-append",
      0
     ],
     "source": [
      "obj-preset-listed",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-preset-menu",
      0
     ],
     "source": [
      "obj-preset-append",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-preset-menu",
      0
     ],
     "source": [
      "obj-clear-presets",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-outputs",
      0
     ],
     "source": [
      "obj-events",
      11
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-output-list",
      0
     ],
     "source": [
      "obj-outputs",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-output-menu",
      0
     ],
     "source": [
      "obj-output-list",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-output-path",
      1
     ],
     "source": [
      "obj-outputs",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-skip",
      0
     ],
     "source": [
      "obj-outputs",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-audio-gate",
      0
     ],
     "source": [
      "obj-midi-skip",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-output-path",
      0
     ],
     "source": [
      "obj-audio-gate",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      4
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      6
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      7
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      8
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      9
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      10
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      11
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      12
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      13
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      14
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      15
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      16
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      17
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      18
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      19
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      20
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      21
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      22
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      23
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      24
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-log",
      0
     ],
     "source": [
      "obj-events",
      25
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-prompt-text",
      0
     ],
     "source": [
      "obj-prompt",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-prompt-symbol",
      0
     ],
     "source": [
      "obj-prompt-text",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bars-float",
      0
     ],
     "source": [
      "obj-bars",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-path",
      0
     ],
     "source": [
      "obj-drop",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-path-keep",
      0
     ],
     "source": [
      "obj-path",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-address",
      0
     ],
     "source": [
      "obj-generate-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-generate-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-ticks",
      0
     ],
     "source": [
      "obj-generate-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-random",
      0
     ],
     "source": [
      "obj-generate-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      6
     ],
     "source": [
      "obj-generate-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-ask-time",
      0
     ],
     "source": [
      "obj-generate-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-ask-date",
      0
     ],
     "source": [
      "obj-generate-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-date",
      0
     ],
     "source": [
      "obj-generate-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-date",
      0
     ],
     "source": [
      "obj-generate-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-hms",
      0
     ],
     "source": [
      "obj-generate-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      3
     ],
     "source": [
      "obj-generate-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      4
     ],
     "source": [
      "obj-generate-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      5
     ],
     "source": [
      "obj-generate-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-ymd",
      0
     ],
     "source": [
      "obj-generate-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-md",
      0
     ],
     "source": [
      "obj-generate-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      1
     ],
     "source": [
      "obj-generate-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      2
     ],
     "source": [
      "obj-generate-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-year",
      0
     ],
     "source": [
      "obj-generate-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id",
      0
     ],
     "source": [
      "obj-generate-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-id-tee",
      0
     ],
     "source": [
      "obj-generate-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-generate-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-pack",
      0
     ],
     "source": [
      "obj-generate-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-pack",
      1
     ],
     "source": [
      "obj-preset-menu",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-pack",
      2
     ],
     "source": [
      "obj-prompt-symbol",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-generate-pack",
      3
     ],
     "source": [
      "obj-bars-float",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-address",
      0
     ],
     "source": [
      "obj-continue-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-continue-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-ticks",
      0
     ],
     "source": [
      "obj-continue-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-random",
      0
     ],
     "source": [
      "obj-continue-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      6
     ],
     "source": [
      "obj-continue-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-ask-time",
      0
     ],
     "source": [
      "obj-continue-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-ask-date",
      0
     ],
     "source": [
      "obj-continue-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-date",
      0
     ],
     "source": [
      "obj-continue-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-date",
      0
     ],
     "source": [
      "obj-continue-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-hms",
      0
     ],
     "source": [
      "obj-continue-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      3
     ],
     "source": [
      "obj-continue-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      4
     ],
     "source": [
      "obj-continue-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      5
     ],
     "source": [
      "obj-continue-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-ymd",
      0
     ],
     "source": [
      "obj-continue-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-md",
      0
     ],
     "source": [
      "obj-continue-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      1
     ],
     "source": [
      "obj-continue-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      2
     ],
     "source": [
      "obj-continue-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-year",
      0
     ],
     "source": [
      "obj-continue-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id",
      0
     ],
     "source": [
      "obj-continue-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-id-tee",
      0
     ],
     "source": [
      "obj-continue-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-continue-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-pack",
      0
     ],
     "source": [
      "obj-continue-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-pack",
      1
     ],
     "source": [
      "obj-preset-menu",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-pack",
      2
     ],
     "source": [
      "obj-path-keep",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-continue-pack",
      3
     ],
     "source": [
      "obj-bars-float",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-address",
      0
     ],
     "source": [
      "obj-variations-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-variations-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-ticks",
      0
     ],
     "source": [
      "obj-variations-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-random",
      0
     ],
     "source": [
      "obj-variations-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      6
     ],
     "source": [
      "obj-variations-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-ask-time",
      0
     ],
     "source": [
      "obj-variations-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-ask-date",
      0
     ],
     "source": [
      "obj-variations-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-date",
      0
     ],
     "source": [
      "obj-variations-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-date",
      0
     ],
     "source": [
      "obj-variations-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-hms",
      0
     ],
     "source": [
      "obj-variations-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      3
     ],
     "source": [
      "obj-variations-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      4
     ],
     "source": [
      "obj-variations-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      5
     ],
     "source": [
      "obj-variations-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-ymd",
      0
     ],
     "source": [
      "obj-variations-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-md",
      0
     ],
     "source": [
      "obj-variations-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      1
     ],
     "source": [
      "obj-variations-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      2
     ],
     "source": [
      "obj-variations-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-year",
      0
     ],
     "source": [
      "obj-variations-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id",
      0
     ],
     "source": [
      "obj-variations-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-id-tee",
      0
     ],
     "source": [
      "obj-variations-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-variations-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-pack",
      0
     ],
     "source": [
      "obj-variations-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-pack",
      1
     ],
     "source": [
      "obj-preset-menu",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-pack",
      2
     ],
     "source": [
      "obj-path-keep",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-pack",
      3
     ],
     "source": [
      "obj-count",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-variations-pack",
      4
     ],
     "source": [
      "obj-bars-float",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-address",
      0
     ],
     "source": [
      "obj-stems-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-stems-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-ticks",
      0
     ],
     "source": [
      "obj-stems-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-random",
      0
     ],
     "source": [
      "obj-stems-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      6
     ],
     "source": [
      "obj-stems-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-ask-time",
      0
     ],
     "source": [
      "obj-stems-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-ask-date",
      0
     ],
     "source": [
      "obj-stems-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-date",
      0
     ],
     "source": [
      "obj-stems-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-date",
      0
     ],
     "source": [
      "obj-stems-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-hms",
      0
     ],
     "source": [
      "obj-stems-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      3
     ],
     "source": [
      "obj-stems-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      4
     ],
     "source": [
      "obj-stems-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      5
     ],
     "source": [
      "obj-stems-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-ymd",
      0
     ],
     "source": [
      "obj-stems-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-md",
      0
     ],
     "source": [
      "obj-stems-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      1
     ],
     "source": [
      "obj-stems-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      2
     ],
     "source": [
      "obj-stems-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-year",
      0
     ],
     "source": [
      "obj-stems-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id",
      0
     ],
     "source": [
      "obj-stems-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-id-tee",
      0
     ],
     "source": [
      "obj-stems-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-stems-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-pack",
      0
     ],
     "source": [
      "obj-stems-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stems-pack",
      1
     ],
     "source": [
      "obj-path-keep",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-address",
      0
     ],
     "source": [
      "obj-midi-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-midi-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-ticks",
      0
     ],
     "source": [
      "obj-midi-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-random",
      0
     ],
     "source": [
      "obj-midi-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      6
     ],
     "source": [
      "obj-midi-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-ask-time",
      0
     ],
     "source": [
      "obj-midi-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-ask-date",
      0
     ],
     "source": [
      "obj-midi-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-date",
      0
     ],
     "source": [
      "obj-midi-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-date",
      0
     ],
     "source": [
      "obj-midi-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-hms",
      0
     ],
     "source": [
      "obj-midi-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      3
     ],
     "source": [
      "obj-midi-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      4
     ],
     "source": [
      "obj-midi-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      5
     ],
     "source": [
      "obj-midi-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-ymd",
      0
     ],
     "source": [
      "obj-midi-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-md",
      0
     ],
     "source": [
      "obj-midi-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      1
     ],
     "source": [
      "obj-midi-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      2
     ],
     "source": [
      "obj-midi-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-year",
      0
     ],
     "source": [
      "obj-midi-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id",
      0
     ],
     "source": [
      "obj-midi-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-id-tee",
      0
     ],
     "source": [
      "obj-midi-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-midi-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-pack",
      0
     ],
     "source": [
      "obj-midi-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-midi-pack",
      1
     ],
     "source": [
      "obj-path-keep",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-cancel-address",
      0
     ],
     "source": [
      "obj-cancel-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-cancel-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      0
     ],
     "source": [
      "obj-cancel-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-cancel-pack",
      0
     ],
     "source": [
      "obj-current-job",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-address",
      0
     ],
     "source": [
      "obj-context-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-context-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      1
     ],
     "source": [
      "obj-context-beats",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      0
     ],
     "source": [
      "obj-context-beats",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      2
     ],
     "source": [
      "obj-context-unit",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      0
     ],
     "source": [
      "obj-context-unit",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      3
     ],
     "source": [
      "obj-context-key",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      0
     ],
     "source": [
      "obj-context-key",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      4
     ],
     "source": [
      "obj-context-rate",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      0
     ],
     "source": [
      "obj-context-rate",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-rate",
      0
     ],
     "source": [
      "obj-context-rate-source",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-poll",
      0
     ],
     "source": [
      "obj-start",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-transport",
      0
     ],
     "source": [
      "obj-poll",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-tempo",
      0
     ],
     "source": [
      "obj-transport",
      4
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-pack",
      0
     ],
     "source": [
      "obj-tempo",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-metre",
      0
     ],
     "source": [
      "obj-transport",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-unit",
      0
     ],
     "source": [
      "obj-metre",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-context-beats",
      0
     ],
     "source": [
      "obj-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-buffer-read",
      0
     ],
     "source": [
      "obj-output-path",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-buffer",
      0
     ],
     "source": [
      "obj-buffer-read",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-start",
      0
     ],
     "source": [
      "obj-play-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-player",
      0
     ],
     "source": [
      "obj-play-start",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      0
     ],
     "source": [
      "obj-player",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      1
     ],
     "source": [
      "obj-player",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-address",
      0
     ],
     "source": [
      "obj-jam-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-jam-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ticks",
      0
     ],
     "source": [
      "obj-jam-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-random",
      0
     ],
     "source": [
      "obj-jam-ticks",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      6
     ],
     "source": [
      "obj-jam-random",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ask-time",
      0
     ],
     "source": [
      "obj-jam-ticks",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ask-date",
      0
     ],
     "source": [
      "obj-jam-ticks",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-date",
      0
     ],
     "source": [
      "obj-jam-ask-time",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-date",
      0
     ],
     "source": [
      "obj-jam-ask-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-hms",
      0
     ],
     "source": [
      "obj-jam-date",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      3
     ],
     "source": [
      "obj-jam-hms",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      4
     ],
     "source": [
      "obj-jam-hms",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      5
     ],
     "source": [
      "obj-jam-hms",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ymd",
      0
     ],
     "source": [
      "obj-jam-date",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-md",
      0
     ],
     "source": [
      "obj-jam-ymd",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      1
     ],
     "source": [
      "obj-jam-md",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      2
     ],
     "source": [
      "obj-jam-md",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-year",
      0
     ],
     "source": [
      "obj-jam-ymd",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id",
      0
     ],
     "source": [
      "obj-jam-year",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-id-tee",
      0
     ],
     "source": [
      "obj-jam-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-current-job",
      1
     ],
     "source": [
      "obj-jam-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-pack",
      0
     ],
     "source": [
      "obj-jam-id-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-pack",
      1
     ],
     "source": [
      "obj-prompt-symbol",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-pack",
      3
     ],
     "source": [
      "obj-tempo",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-pack",
      5
     ],
     "source": [
      "obj-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-pack",
      9
     ],
     "source": [
      "obj-preset-menu",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-current",
      1
     ],
     "source": [
      "obj-jam-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-go",
      0
     ],
     "source": [
      "obj-jam-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-clear",
      0
     ],
     "source": [
      "obj-jam-go",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-unready",
      0
     ],
     "source": [
      "obj-jam-go",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ready",
      0
     ],
     "source": [
      "obj-jam-unready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-spare-zero",
      0
     ],
     "source": [
      "obj-jam-go",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-spare",
      0
     ],
     "source": [
      "obj-jam-spare-zero",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-poll-on",
      0
     ],
     "source": [
      "obj-jam-go",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-stop-address",
      0
     ],
     "source": [
      "obj-jam-stop-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-jam-stop-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-current",
      0
     ],
     "source": [
      "obj-jam-stop-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-stop-pack",
      0
     ],
     "source": [
      "obj-jam-current",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-prompt-address",
      0
     ],
     "source": [
      "obj-jam-prompt-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-jam-prompt-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-prompt-pack",
      2
     ],
     "source": [
      "obj-prompt-symbol",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-prompt-id",
      1
     ],
     "source": [
      "obj-jam-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-prompt-id",
      0
     ],
     "source": [
      "obj-jam-prompt-button",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-prompt-pack",
      0
     ],
     "source": [
      "obj-jam-prompt-id",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-poll",
      0
     ],
     "source": [
      "obj-jam-poll-on",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-state",
      0
     ],
     "source": [
      "obj-events",
      8
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-ended",
      0
     ],
     "source": [
      "obj-jam-state",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-bar",
      1
     ],
     "source": [
      "obj-jam-state",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-at",
      0
     ],
     "source": [
      "obj-jam-state",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-steps",
      0
     ],
     "source": [
      "obj-stop-at",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-beats",
      0
     ],
     "source": [
      "obj-stop-steps",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-beat",
      2
     ],
     "source": [
      "obj-stop-beats",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-bar",
      0
     ],
     "source": [
      "obj-stop-steps",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-beat",
      1
     ],
     "source": [
      "obj-stop-bar",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-origin",
      0
     ],
     "source": [
      "obj-stop-steps",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-beat",
      0
     ],
     "source": [
      "obj-stop-origin",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-last",
      0
     ],
     "source": [
      "obj-stop-beat",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-last-set",
      0
     ],
     "source": [
      "obj-stop-last",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-later",
      1
     ],
     "source": [
      "obj-stop-last",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-ready",
      0
     ],
     "source": [
      "obj-stop-last",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-later",
      0
     ],
     "source": [
      "obj-stop-ready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-drop",
      0
     ],
     "source": [
      "obj-stop-later",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-unready",
      0
     ],
     "source": [
      "obj-stop-drop",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-stop-unready-set",
      0
     ],
     "source": [
      "obj-stop-unready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-unstop",
      0
     ],
     "source": [
      "obj-jam-go",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-unstop-set",
      0
     ],
     "source": [
      "obj-jam-unstop",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-poll-off",
      0
     ],
     "source": [
      "obj-jam-ended",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-poll-off",
      0
     ],
     "source": [
      "obj-jam-ended",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-poll",
      0
     ],
     "source": [
      "obj-jam-poll-off",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-clock",
      0
     ],
     "source": [
      "obj-jam-poll",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-metre",
      0
     ],
     "source": [
      "obj-jam-clock",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-transport-address",
      0
     ],
     "source": [
      "obj-jam-transport-pack",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-udpsend",
      0
     ],
     "source": [
      "obj-jam-transport-address",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-bpm",
      1
     ],
     "source": [
      "obj-jam-clock",
      4
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-transport-pack",
      2
     ],
     "source": [
      "obj-jam-clock",
      6
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-transport-pack",
      3
     ],
     "source": [
      "obj-jam-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat",
      1
     ],
     "source": [
      "obj-jam-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat",
      4
     ],
     "source": [
      "obj-jam-clock",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat",
      3
     ],
     "source": [
      "obj-jam-clock",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat",
      2
     ],
     "source": [
      "obj-jam-clock",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat",
      0
     ],
     "source": [
      "obj-jam-clock",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-beat-tee",
      0
     ],
     "source": [
      "obj-jam-beat",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-transport-pack",
      1
     ],
     "source": [
      "obj-jam-beat-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-bpm",
      0
     ],
     "source": [
      "obj-jam-beat-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-transport-pack",
      0
     ],
     "source": [
      "obj-jam-bpm",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk",
      0
     ],
     "source": [
      "obj-events",
      6
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-ours",
      1
     ],
     "source": [
      "obj-jam-id-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-entry",
      1
     ],
     "source": [
      "obj-chunk",
      7
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-start",
      1
     ],
     "source": [
      "obj-chunk",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-ours",
      0
     ],
     "source": [
      "obj-chunk",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-start",
      0
     ],
     "source": [
      "obj-chunk-ours",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-entry",
      0
     ],
     "source": [
      "obj-chunk-start",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-origin",
      2
     ],
     "source": [
      "obj-chunk",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-origin",
      1
     ],
     "source": [
      "obj-chunk",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-origin",
      0
     ],
     "source": [
      "obj-chunk",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-origin-set",
      0
     ],
     "source": [
      "obj-chunk-origin",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-beats-set",
      0
     ],
     "source": [
      "obj-chunk",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-tee",
      0
     ],
     "source": [
      "obj-chunk-entry",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queue",
      0
     ],
     "source": [
      "obj-chunk-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queue",
      0
     ],
     "source": [
      "obj-jam-clear",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-bar",
      1
     ],
     "source": [
      "obj-chunk",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-chunk-bar",
      0
     ],
     "source": [
      "obj-chunk",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-bar-text",
      0
     ],
     "source": [
      "obj-chunk-bar",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-jam-bar-box",
      0
     ],
     "source": [
      "obj-jam-bar-text",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-clock",
      0
     ],
     "source": [
      "obj-bar-line",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-metre",
      0
     ],
     "source": [
      "obj-bar-clock",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-first-beat",
      1
     ],
     "source": [
      "obj-bar-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-first-beat",
      0
     ],
     "source": [
      "obj-bar-clock",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar",
      0
     ],
     "source": [
      "obj-bar-first-beat",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-ready",
      0
     ],
     "source": [
      "obj-bar",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-ready-get",
      0
     ],
     "source": [
      "obj-bar-ready",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-is-ready",
      1
     ],
     "source": [
      "obj-bar-ready-get",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-is-ready",
      0
     ],
     "source": [
      "obj-bar-ready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-play",
      0
     ],
     "source": [
      "obj-bar-is-ready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-next",
      1
     ],
     "source": [
      "obj-bar-metre",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-bar-next",
      0
     ],
     "source": [
      "obj-bar",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play",
      0
     ],
     "source": [
      "obj-bar-play",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-unready",
      0
     ],
     "source": [
      "obj-play",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-unready-set",
      0
     ],
     "source": [
      "obj-play-unready",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-spare",
      0
     ],
     "source": [
      "obj-play",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-tee",
      0
     ],
     "source": [
      "obj-play-spare",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-flip",
      0
     ],
     "source": [
      "obj-play-tee",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-flip-set",
      0
     ],
     "source": [
      "obj-play-flip",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-play-which",
      0
     ],
     "source": [
      "obj-play-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-check",
      0
     ],
     "source": [
      "obj-bar-next",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-last",
      0
     ],
     "source": [
      "obj-load-check",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-allowed",
      1
     ],
     "source": [
      "obj-load-last",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-allowed",
      0
     ],
     "source": [
      "obj-load-check",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-open",
      0
     ],
     "source": [
      "obj-load-allowed",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-open",
      1
     ],
     "source": [
      "obj-load-check",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load",
      0
     ],
     "source": [
      "obj-load-open",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-key",
      1
     ],
     "source": [
      "obj-load",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-remove",
      0
     ],
     "source": [
      "obj-load",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queue",
      0
     ],
     "source": [
      "obj-load-remove",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-queue",
      0
     ],
     "source": [
      "obj-load",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-found",
      0
     ],
     "source": [
      "obj-queue",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-retry",
      0
     ],
     "source": [
      "obj-chunk-tee",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-retry",
      1
     ],
     "source": [
      "obj-bar-next",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-check",
      0
     ],
     "source": [
      "obj-load-retry",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-key",
      0
     ],
     "source": [
      "obj-load-found",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-ready",
      0
     ],
     "source": [
      "obj-load-key",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-which",
      0
     ],
     "source": [
      "obj-load-found",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-spare",
      0
     ],
     "source": [
      "obj-load-which",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-gate-index",
      0
     ],
     "source": [
      "obj-load-spare",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-gate",
      0
     ],
     "source": [
      "obj-load-gate-index",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-gate",
      1
     ],
     "source": [
      "obj-load-which",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-A",
      0
     ],
     "source": [
      "obj-load-gate",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-buffer-A",
      0
     ],
     "source": [
      "obj-load-A",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-start-A",
      0
     ],
     "source": [
      "obj-play-which",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-player-A",
      0
     ],
     "source": [
      "obj-start-A",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      0
     ],
     "source": [
      "obj-player-A",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      1
     ],
     "source": [
      "obj-player-A",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-load-B",
      0
     ],
     "source": [
      "obj-load-gate",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-buffer-B",
      0
     ],
     "source": [
      "obj-load-B",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-start-B",
      0
     ],
     "source": [
      "obj-play-which",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-player-B",
      0
     ],
     "source": [
      "obj-start-B",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      0
     ],
     "source": [
      "obj-player-B",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-dac",
      1
     ],
     "source": [
      "obj-player-B",
      0
     ]
    }
   }
  ],
  "dependency_cache": [],
  "autosave": 0
 }
}
