from keeneye.cli.main import app

app(prog_name="keeneye")
